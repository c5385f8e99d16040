//! The ONNX protobuf messages (`onnx.proto`, package `onnx`).
//!
//! Why prost with its generated code committed: prost is the maintained protobuf crate of
//! the Rust ecosystem (the workspace's lockfile already holds it), it is pure Rust, and with
//! the generated code in `onnx_pb.rs` the build needs no `protoc`. The alternatives fall
//! short: `tract_onnx::pb` would make a serializer depend on a whole inference engine
//! (tract-core, tract-linalg and its assembly kernels) and tie the message types to tract's
//! releases; `onnx-pb` is built on prost 0.6 (2020) and runs prost-build at build time;
//! `onnx-protobuf` is a single-maintainer crate on rust-protobuf under MPL-2.0, where this
//! workspace is MIT/Apache.
//!
//! `onnx_pb.rs` is prost-build 0.14.6's output, unedited, for `../proto/onnx.proto` as ONNX
//! 1.23.2 ships it (proto2: a field written is a field present, as ONNX's own readers
//! expect). Comments are left out (rustdoc would read the proto's brackets as links); the
//! proto file documents every field. To regenerate, in a scratch crate depending on
//! `prost-build = "0.14"`, with `protoc` installed:
//!
//! ```text
//! prost_build::Config::new()
//!     .out_dir("out")
//!     .disable_comments(["."])
//!     .compile_protos(&["proto/onnx.proto"], &["proto"])?;
//! ```
//!
//! and copy `out/onnx.rs` over `onnx_pb.rs`.

// Generated code: the exporter writes only a part of the format, and prost's derives are
// not held to the workspace's style.
#![allow(dead_code, missing_docs, clippy::all, clippy::pedantic)]

include!("onnx_pb.rs");
