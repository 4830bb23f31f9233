//! Table names: checked, then always sent as quoted identifiers, so that no name can
//! change what a statement does.

/// PostgreSQL silently truncates identifiers longer than this (NAMEDATALEN - 1), which
/// could make two names mean one table: refuse them instead.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// A table name, optionally schema-qualified, ready to paste into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// `"schema"."name"` or `"name"`, each part quoted with `"` doubled.
    pub(crate) quoted: String,
}

impl Table {
    /// Parses `name` (`table` or `schema.table`). Each part is used exactly as written,
    /// case included, and may contain any character but NUL and `.`.
    pub(crate) fn parse(name: &str) -> Result<Table, String> {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() > 2 {
            return Err(format!(
                "invalid table name {name:?}: expected `table` or `schema.table`, with at most one dot"
            ));
        }
        for part in &parts {
            if part.is_empty() {
                return Err(format!(
                    "invalid table name {name:?}: the schema and table names must not be empty"
                ));
            }
            if part.contains('\0') {
                return Err(format!(
                    "invalid table name {name:?}: PostgreSQL names cannot contain NUL"
                ));
            }
            if part.len() > MAX_IDENTIFIER_BYTES {
                return Err(format!(
                    "invalid table name {name:?}: {part:?} is longer than PostgreSQL's \
                     {MAX_IDENTIFIER_BYTES}-byte limit for names"
                ));
            }
        }
        let quoted: Vec<String> = parts.iter().map(|p| quote(p)).collect();
        Ok(Table {
            quoted: quoted.join("."),
        })
    }
}

/// `"part"`, with every `"` doubled: PostgreSQL's quoted identifier.
fn quote(part: &str) -> String {
    format!("\"{}\"", part.replace('"', "\"\""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted() {
        assert_eq!(Table::parse("hits").unwrap().quoted, r#""hits""#);
        assert_eq!(Table::parse("app.Hits").unwrap().quoted, r#""app"."Hits""#);
        assert_eq!(
            Table::parse(r#"x"; DROP TABLE y; --"#).unwrap().quoted,
            r#""x""; DROP TABLE y; --""#
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", ".", "a.", ".a", "a.b.c", "a\0b", &"x".repeat(64)] {
            assert!(Table::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Table::parse(&"x".repeat(63)).is_ok());
    }
}
