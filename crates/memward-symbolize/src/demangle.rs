//! Demangling of the names found in symbol tables and DWARF.
//!
//! Symbols carry no language tag, so the scheme is recognised from the name itself: Rust's
//! legacy (`_ZN...17h<hash>E`) and v0 (`_R...`) manglings first, because a legacy Rust
//! name is also a valid Itanium C++ name (which would keep the `h<hash>` part), then the
//! Itanium C++ ABI (`_Z...`). The Rust hash suffix is dropped (`{:#}`), as people read
//! `alloc::vec::Vec<T>::push`, not `...::push::h0123456789abcdef`. Anything else (C
//! names, names already demangled in DWARF) is returned unchanged.

use std::borrow::Cow;

/// The readable form of a mangled Rust or C++ name; other names come back unchanged.
///
/// ```
/// use memward_symbolize::demangle;
/// assert_eq!(demangle("_ZN4core3ptr13drop_in_place17h0123456789abcdefE"), "core::ptr::drop_in_place");
/// assert_eq!(demangle("_ZN3foo3barEi"), "foo::bar(int)");
/// assert_eq!(demangle("main"), "main");
/// ```
pub fn demangle(name: &str) -> Cow<'_, str> {
    if let Ok(rust) = rustc_demangle::try_demangle(name) {
        // Legacy Rust names are valid Itanium names too; rustc-demangle only accepts them
        // when the last path element is the `h<16 hex digits>` hash.
        return Cow::Owned(format!("{rust:#}"));
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(text) = sym.demangle(&cpp_demangle::DemangleOptions::default()) {
                return Cow::Owned(text);
            }
        }
    }
    Cow::Borrowed(name)
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn rust_legacy_drops_the_hash() {
        assert_eq!(
            demangle("_ZN5alloc3vec16Vec$LT$T$C$A$GT$4push17h1f2e3d4c5b6a7988E"),
            "alloc::vec::Vec<T,A>::push"
        );
    }

    #[test]
    fn rust_v0() {
        // From the v0 mangling RFC's examples: `<Foo>::bar` style paths and generics.
        assert_eq!(
            demangle("_RNvCs15kBYyAo9fc_7mycrate7example"),
            "mycrate::example"
        );
        assert_eq!(
            demangle("_RINvNtC3std3mem8align_ofjE"),
            "std::mem::align_of::<usize>"
        );
    }

    #[test]
    fn cpp_itanium() {
        assert_eq!(demangle("_Znwm"), "operator new(unsigned long)");
        assert_eq!(
            demangle("_ZNSt6vectorIiSaIiEE9push_backERKi"),
            "std::vector<int, std::allocator<int> >::push_back(int const&)"
        );
    }

    #[test]
    fn plain_and_malformed_names_are_unchanged() {
        assert_eq!(demangle("malloc"), "malloc");
        assert_eq!(demangle("_Z"), "_Z");
        assert_eq!(demangle("_ZN3foo"), "_ZN3foo");
        assert_eq!(demangle(""), "");
    }
}
