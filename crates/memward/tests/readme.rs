//! The Rust quick start in the repository's README.md is `examples/quickstart.rs`, which
//! cargo compiles with the tests; this test keeps the two the same text, so the README's
//! program is one that builds.

#[test]
fn readme_quick_start_is_the_example() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(dir.join("../../README.md")).unwrap();
    let example = std::fs::read_to_string(dir.join("examples/quickstart.rs")).unwrap();
    let section = &readme[readme
        .find("## Quick start for Rust")
        .expect("README.md has a Rust quick start")..];
    let start = section.find("```rust\n").expect("with a Rust block") + "```rust\n".len();
    let len = section[start..].find("```").expect("the block is closed");
    assert_eq!(
        &section[start..start + len],
        example,
        "README.md's Rust quick start differs from examples/quickstart.rs; copy the file"
    );
}
