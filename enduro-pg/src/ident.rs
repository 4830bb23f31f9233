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
    /// The schema as written, if any, and the name as written.
    pub(crate) schema: Option<String>,
    pub(crate) name: String,
}

impl Table {
    /// Parses `name` (`table` or `schema.table`). Each part is used exactly as written,
    /// case included, and may contain any character but NUL and `.`; the schema must not
    /// be one of temporary tables (`pg_temp`, `pg_temp_N`), which each connection sees
    /// apart.
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
        if let [schema, _] = parts[..]
            && is_temporary_schema(schema)
        {
            return Err(format!(
                "invalid table name {name:?}: {schema:?} is PostgreSQL's per-session schema \
                 of temporary tables, where each connection sees a temporary table of its \
                 own, so atoms would neither be shared nor outlive their connection; name a \
                 table in a regular schema (such as `public.table`)"
            ));
        }
        let quoted: Vec<String> = parts.iter().map(|p| quote(p)).collect();
        let (schema, name) = match parts[..] {
            [schema, name] => (Some(schema.to_owned()), name.to_owned()),
            _ => (None, name.to_owned()),
        };
        Ok(Table {
            quoted: quoted.join("."),
            schema,
            name,
        })
    }
}

/// Whether `schema` names a schema of temporary tables: `pg_temp` (the session's own) or
/// `pg_temp_N` / `pg_toast_temp_N` (its real name). Any case is refused: `PG_TEMP` is a
/// different (regular) schema once quoted, but nobody means that.
fn is_temporary_schema(schema: &str) -> bool {
    let lower = schema.to_ascii_lowercase();
    let numbered = |prefix: &str| {
        lower
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    lower == "pg_temp" || numbered("pg_temp_") || numbered("pg_toast_temp_")
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

    #[test]
    fn temporary_schemas_are_refused() {
        for temp in [
            "pg_temp.t",
            "pg_temp_3.t",
            "PG_TEMP.t",
            "Pg_Temp_12.t",
            "pg_toast_temp_1.t",
        ] {
            let e = Table::parse(temp).unwrap_err();
            assert!(e.contains("temporary tables"), "{temp:?}: {e}");
        }
        for fine in [
            "pg_temp",
            "public.pg_temp",
            "pg_temp_x.t",
            "pg_temporary.t",
            "pg_temp_.t",
        ] {
            assert!(Table::parse(fine).is_ok(), "{fine:?}");
        }
    }
}
