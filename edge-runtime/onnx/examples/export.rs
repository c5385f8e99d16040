//! Exports a model file as ONNX, for manual use until the trainer's `flowgate onnx` lands:
//!
//! ```text
//! cargo run --release -p flowgate-onnx --example export -- GATE.fgm GATE.onnx [--int8-dequantize-linear]
//! ```

use std::process::ExitCode;

use flowgate_onnx::{ExportOptions, Int8Weights, export};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dequantize_linear = args.iter().any(|a| a == "--int8-dequantize-linear");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [model, out] = paths.as_slice() else {
        eprintln!("usage: export MODEL.fgm OUT.onnx [--int8-dequantize-linear]");
        return ExitCode::from(2);
    };
    let int8 = if dequantize_linear {
        Int8Weights::DequantizeLinear
    } else {
        Int8Weights::Dequantized
    };
    let result = std::fs::read(model)
        .map_err(|e| format!("{model}: {e}"))
        .and_then(|bytes| {
            let options = ExportOptions::default().with_int8_weights(int8);
            export(&bytes, &options).map_err(|e| format!("{model}: {e}"))
        })
        .and_then(|onnx| {
            std::fs::write(out, &onnx)
                .map(|()| onnx.len())
                .map_err(|e| format!("{out}: {e}"))
        });
    match result {
        Ok(len) => {
            println!("{out}: {len} bytes");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
