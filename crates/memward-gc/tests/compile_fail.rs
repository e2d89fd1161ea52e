//! What must not compile: each file under `tests/ui/` is a misuse the types forbid.
#[test]
fn misuse_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
