//! Compacts profiles in place, as `memward profile` does after the run (for files
//! recorded with `MEMWARD_PROFILE` directly): `cargo run --example compact -- FILE...`.
//! Prints each file's size before and after.

fn main() {
    let paths: Vec<_> = std::env::args_os().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: compact FILE...");
        std::process::exit(2);
    }
    let mut failed = false;
    for p in paths {
        let path = std::path::Path::new(&p);
        let before = std::fs::metadata(path).map_or(0, |m| m.len());
        match memward_profile_format::compact_file(path) {
            Ok(after) => println!("{}: {before} -> {after} bytes", path.display()),
            Err(e) => {
                eprintln!("compact: {}: {e}", path.display());
                failed = true;
            }
        }
    }
    std::process::exit(i32::from(failed));
}
