//! `{{ name }}` in a step's strings: a parameter, `{{ database.container }}` (the container
//! a database or cache parameter runs in, from the configuration), or `{{ secret.NAME }}` (a
//! value of `[runbooks.secrets]`, shown as `***` everywhere but in the request that uses it).
//! Double braces, so a JSON body's own braces need no escaping.

/// The names referred to in `text`, trimmed, in order.
///
/// # Errors
/// A `{{` without its `}}`, or an empty or malformed name.
pub fn references(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("a {{ is not closed by }}")?;
        let name = after[..end].trim();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || name.starts_with('.')
            || name.ends_with('.')
        {
            return Err(
                "{{…}} holds a parameter name: {{database}}, {{database.container}}, {{secret.NAME}}".to_owned()
            );
        }
        out.push(name.to_owned());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Replaces every `{{ name }}` with `value(name)`.
///
/// # Errors
/// As [`references`], and what `value` says.
pub fn expand(text: &str, value: &dyn Fn(&str) -> Result<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("a {{ is not closed by }}")?;
        out.push_str(&value(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_names_and_leaves_json_alone() {
        let v = |n: &str| match n {
            "database" => Ok("main".to_owned()),
            "database.container" => Ok("shop-db-1".to_owned()),
            other => Err(format!("unknown {other}")),
        };
        assert_eq!(expand("postgres:{{ database }}", &v).unwrap(), "postgres:main");
        assert_eq!(expand("{{database.container}}/x", &v).unwrap(), "shop-db-1/x");
        assert_eq!(expand(r#"{"from": 1}"#, &v).unwrap(), r#"{"from": 1}"#);
        assert!(expand("{{ nope }}", &v).unwrap_err().contains("unknown"));
        assert!(references("{{ open").is_err());
        assert!(references("{{ }}").is_err());
        assert_eq!(references("a {{x}} b {{ y.container }}").unwrap(), ["x", "y.container"]);
    }
}
