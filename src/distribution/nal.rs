//! NAL (network abstraction layer) paths, the way Configuration Manager names a site system:
//! `["Display=\\DP01.contoso.com\"]MSWNET:["SMS_SITE=PS1"]\\DP01.contoso.com\`.

use std::fmt;

/// The NAL types Configuration Manager knows.
const NAL_TYPES: [&str; 5] = ["MSWNET", "GENERIC", "NWBIND", "NWNDS", "LOCAL"];

/// A parsed NAL path. Two NAL paths name the same DP when their server names are equal,
/// ignoring case, as Windows host names are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nal {
    pub server: String,
    pub nal_type: String,
    pub site_code: String,
}

impl Nal {
    /// Parses a NAL path; the error says which part is wrong and shows the expected shape.
    pub fn parse(input: &str) -> Result<Nal, String> {
        let fail = |what: &str| {
            Err(format!(
                "malformed NAL path {input:?}: {what}; expected \
                 [\"Display=\\\\SERVER\\\"]MSWNET:[\"SMS_SITE=ABC\"]\\\\SERVER\\"
            ))
        };
        let s = input.trim();
        let Some(rest) = s.strip_prefix("[\"Display=") else {
            return fail("it must start with [\"Display=");
        };
        let Some((display, rest)) = rest.split_once("\"]") else {
            return fail("the Display part is not closed with \"]");
        };
        let Some(display_server) = unc_server(display) else {
            return fail("the Display part must be \\\\SERVER\\");
        };
        let Some((nal_type, rest)) = rest.split_once(':') else {
            return fail("the NAL type (such as MSWNET:) is missing");
        };
        let nal_type = nal_type.to_ascii_uppercase();
        if !NAL_TYPES.contains(&nal_type.as_str()) {
            return fail(&format!(
                "unknown NAL type {nal_type:?} (one of {})",
                NAL_TYPES.join(", ")
            ));
        }
        let Some(rest) = rest.strip_prefix("[\"SMS_SITE=") else {
            return fail("the [\"SMS_SITE=...\"] part is missing");
        };
        let Some((site_code, path)) = rest.split_once("\"]") else {
            return fail("the SMS_SITE part is not closed with \"]");
        };
        if site_code.len() != 3 || !site_code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return fail(&format!(
                "site code {site_code:?} must be 3 letters or digits"
            ));
        }
        let Some(server) = unc_server(path) else {
            return fail("the path after the site code must be \\\\SERVER\\");
        };
        if !server.eq_ignore_ascii_case(display_server) {
            return fail(&format!(
                "the Display server {display_server:?} differs from the path's server {server:?}"
            ));
        }
        Ok(Nal {
            server: server.to_string(),
            nal_type,
            site_code: site_code.to_ascii_uppercase(),
        })
    }
}

/// `\\SERVER\` (the trailing backslash may be left out) → `SERVER`, when SERVER is a plausible
/// host name: letters, digits, `-`, `_` and dots between labels.
fn unc_server(s: &str) -> Option<&str> {
    let name = s.strip_prefix("\\\\")?;
    let name = name.strip_suffix('\\').unwrap_or(name);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    valid.then_some(name)
}

impl fmt::Display for Nal {
    /// The canonical form, as Configuration Manager writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[\"Display=\\\\{s}\\\"]{t}:[\"SMS_SITE={c}\"]\\\\{s}\\",
            s = self.server,
            t = self.nal_type,
            c = self.site_code
        )
    }
}

impl std::str::FromStr for Nal {
    type Err = String;
    fn from_str(s: &str) -> Result<Nal, String> {
        Nal::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DP01: &str =
        r#"["Display=\\DP01.contoso.com\"]MSWNET:["SMS_SITE=PS1"]\\DP01.contoso.com\"#;

    #[test]
    fn parses_the_documented_form() {
        let nal = Nal::parse(DP01).expect("valid");
        assert_eq!(nal.server, "DP01.contoso.com");
        assert_eq!(nal.nal_type, "MSWNET");
        assert_eq!(nal.site_code, "PS1");
        assert_eq!(nal.to_string(), DP01);
        let other = Nal::parse(
            r#"["Display=\\P01PDP1.CONTOSO.COM\"]MSWNET:["SMS_SITE=P01"]\\P01PDP1.CONTOSO.COM\"#,
        )
        .expect("valid");
        assert_eq!(other.server, "P01PDP1.CONTOSO.COM");
    }

    #[test]
    fn round_trips_and_normalises_case_of_type_and_site() {
        let nal = Nal::parse(r#"["Display=\\dp02\"]mswnet:["SMS_SITE=ps1"]\\DP02"#).expect("valid");
        // The server name comes from the path; the Display part only has to agree with it.
        assert_eq!(
            nal.to_string(),
            r#"["Display=\\DP02\"]MSWNET:["SMS_SITE=PS1"]\\DP02\"#
        );
        assert_eq!(Nal::parse(&nal.to_string()), Ok(nal));
    }

    #[test]
    fn rejects_malformed_paths_saying_why() {
        let cases = [
            ("", "must start with"),
            ("DP01.contoso.com", "must start with"),
            (
                r#"["Display=\\DP01\"MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
                "Display part",
            ),
            (r#"["Display=\\DP01\"]["SMS_SITE=PS1"]\\DP01\"#, "NAL type"),
            (
                r#"["Display=DP01"]MSWNET:["SMS_SITE=PS1"]\\DP01\"#,
                "Display part must be",
            ),
            (
                r#"["Display=\\DP01\"]FOO:["SMS_SITE=PS1"]\\DP01\"#,
                "unknown NAL type",
            ),
            (r#"["Display=\\DP01\"]MSWNET:\\DP01\"#, "SMS_SITE"),
            (
                r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS12"]\\DP01\"#,
                "site code",
            ),
            (
                r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]DP01"#,
                "path after",
            ),
            (
                r#"["Display=\\DP01\"]MSWNET:["SMS_SITE=PS1"]\\DP02\"#,
                "differs",
            ),
            (
                r#"["Display=\\DP 01\"]MSWNET:["SMS_SITE=PS1"]\\DP 01\"#,
                "Display part",
            ),
            (
                r#"["Display=\\DP01..x\"]MSWNET:["SMS_SITE=PS1"]\\DP01..x\"#,
                "Display part",
            ),
        ];
        for (input, expected) in cases {
            let err = Nal::parse(input).expect_err(input);
            assert!(err.contains(expected), "{input}: {err}");
            assert!(err.contains("malformed NAL path"), "{err}");
        }
    }
}
