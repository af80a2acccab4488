//! Write a synthetic host tree: `mkhost DESCRIPTION.host OUTDIR` or
//! `mkhost --sriov FUNCTIONS OUTDIR` (see `traspaso::fixture`).
use std::process::ExitCode;

use traspaso::fixture::HostSpec;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (spec, out) = match args.as_slice() {
        [flag, n, out] if flag == "--sriov" => match n.parse() {
            Ok(n) => (HostSpec::sriov(n), out),
            Err(_) => {
                eprintln!("mkhost: {n:?} is not a number of functions");
                return ExitCode::from(2);
            }
        },
        [file, out] => {
            let parsed = std::fs::read_to_string(file)
                .map_err(|e| e.to_string())
                .and_then(|text| HostSpec::parse(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(spec) => (spec, out),
                Err(e) => {
                    eprintln!("mkhost: {file}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => {
            eprintln!("usage: mkhost (DESCRIPTION.host | --sriov FUNCTIONS) OUTDIR");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = spec.write(std::path::Path::new(out)) {
        eprintln!("mkhost: {out}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
