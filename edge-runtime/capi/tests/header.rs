//! The committed `include/flowgate.h` is what cbindgen makes of `src/lib.rs` today.
//!
//! When the C ABI changes, regenerate the header with
//! `FLOWGATE_BLESS=1 cargo test --release -p flowgate-edge-capi --test header` and commit it.

use std::path::Path;

#[test]
fn committed_header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/lib.rs"))
        .generate()
        .unwrap();
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();

    let path = root.join("include/flowgate.h");
    if std::env::var_os("FLOWGATE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with src/lib.rs: regenerate it with \
         `FLOWGATE_BLESS=1 cargo test --release -p flowgate-edge-capi --test header`",
        path.display()
    );
}
