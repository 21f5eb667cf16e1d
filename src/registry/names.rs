//! Registry names compare as Windows compares them.

/// Windows compares key and value names ignoring case, by each character's upper case.
pub fn names_equal(a: &str, b: &str) -> bool {
    a.chars().map(upcase).eq(b.chars().map(upcase))
}

/// A character's upper case when it is one character (as RtlUpcaseUnicodeChar maps one UTF-16
/// unit to one), the character itself otherwise.
pub fn upcase(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}
