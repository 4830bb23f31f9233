//! Table names: checked, then always sent as quoted identifiers, so that no name can
//! change what a statement does.

/// A table name, ready to paste into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// `"name"`, with every `"` doubled: SQLite's quoted identifier.
    pub(crate) quoted: String,
    /// The name as written.
    pub(crate) name: String,
}

impl Table {
    /// Checks `name`: used exactly as written (a dot is part of the name, not a schema),
    /// any characters but NUL, not empty, and not a name SQLite keeps for itself (`sqlite_`
    /// in any case, which SQLite refuses to create).
    pub(crate) fn parse(name: &str) -> Result<Table, String> {
        if name.is_empty() {
            return Err("invalid table name \"\": the name must not be empty".to_owned());
        }
        if name.contains('\0') {
            return Err(format!(
                "invalid table name {name:?}: SQLite names cannot contain NUL"
            ));
        }
        if name
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
        {
            return Err(format!(
                "invalid table name {name:?}: names that begin with `sqlite_` (in any case) \
                 are reserved for SQLite's own tables; choose another name"
            ));
        }
        Ok(Table {
            quoted: quote(name),
            name: name.to_owned(),
        })
    }
}

/// `"name"`, with every `"` doubled.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted() {
        assert_eq!(Table::parse("hits").unwrap().quoted, r#""hits""#);
        assert_eq!(Table::parse("app.Hits").unwrap().quoted, r#""app.Hits""#);
        assert_eq!(
            Table::parse(r#"x"; DROP TABLE y; --"#).unwrap().quoted,
            r#""x""; DROP TABLE y; --""#
        );
        assert_eq!(Table::parse("ünï 表").unwrap().quoted, "\"ünï 表\"");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a\0b", "sqlite_x", "SQLite_master", "sqlite_"] {
            assert!(Table::parse(bad).is_err(), "{bad:?}");
        }
        for fine in ["sqlite", "sqlitex", "my_sqlite_x", "é", "sqlit"] {
            assert!(Table::parse(fine).is_ok(), "{fine:?}");
        }
    }
}
