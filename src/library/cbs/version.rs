//! CBS versions (`major.minor.build.revision`) and the comparisons a `<parent>` declares.

use std::fmt;
use std::str::FromStr;

/// A package or parent version. Fewer than four parts count the missing ones as 0, as CBS does
/// for `10.0.22621` style versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CbsVersion(pub [u32; 4]);

impl CbsVersion {
    pub fn build(self) -> u32 {
        self.0[2]
    }

    pub fn revision(self) -> u32 {
        self.0[3]
    }
}

impl FromStr for CbsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = [0u32; 4];
        for (n, part) in s.trim().split('.').enumerate() {
            let slot = parts
                .get_mut(n)
                .ok_or_else(|| format!("version {s:?} has more than four parts"))?;
            *slot = part
                .parse()
                .map_err(|_| format!("version {s:?}: {part:?} is not a number"))?;
        }
        Ok(CbsVersion(parts))
    }
}

impl fmt::Display for CbsVersion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// Does `have` satisfy `want` under a `buildCompare`/`revisionCompare` operator? An absent
/// operator means "at least" (a package built against a version runs on later ones); an
/// operator CBS may have that ois does not know is an `Err`, so the caller can say so rather
/// than guess.
pub fn compare(op: Option<&str>, have: u32, want: u32) -> Result<bool, String> {
    Ok(match op.map(|o| o.trim().to_ascii_uppercase()).as_deref() {
        None | Some("") | Some("GE") => have >= want,
        Some("EQ") => have == want,
        Some("GT") => have > want,
        Some("LE") => have <= want,
        Some("LT") => have < want,
        Some("NE") => have != want,
        Some(other) => return Err(format!("unknown version comparison {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order_numerically() {
        let a: CbsVersion = "22621.4460.1.15".parse().expect("parse");
        let b: CbsVersion = "22621.10000.1.1".parse().expect("parse");
        assert!(a < b);
        assert_eq!(
            "10.0.26100".parse::<CbsVersion>(),
            Ok(CbsVersion([10, 0, 26100, 0]))
        );
        assert!("1.2.3.4.5".parse::<CbsVersion>().is_err());
        assert!("1.x".parse::<CbsVersion>().is_err());
        assert_eq!(a.to_string(), "22621.4460.1.15");
    }

    #[test]
    fn comparisons() {
        assert_eq!(compare(Some("EQ"), 5, 5), Ok(true));
        assert_eq!(compare(Some("ge"), 4, 5), Ok(false));
        assert_eq!(compare(None, 6, 5), Ok(true));
        assert_eq!(compare(Some("LT"), 4, 5), Ok(true));
        assert!(compare(Some("ALMOST"), 4, 5).is_err());
    }
}
