//! Filling a fixture's per-run values where the peer has no way of its
//! own to take them: `{{name}}` placeholders, each of which must be given,
//! and none given that the text lacks.

/// Fixture text and the values for its `{{name}}` placeholders.
#[derive(Debug, Clone)]
pub struct Template {
    what: String,
    text: String,
}

impl Template {
    /// `text`, named `what` in failure messages (its file name).
    pub fn new(what: &str, text: &str) -> Template {
        Template {
            what: what.to_owned(),
            text: text.to_owned(),
        }
    }

    /// Replaces every `{{name}}` with `value`; panics if there is none.
    pub fn set(mut self, name: &str, value: impl std::fmt::Display) -> Template {
        let key = format!("{{{{{name}}}}}");
        assert!(
            self.text.contains(&key),
            "{} has no {key} placeholder",
            self.what
        );
        self.text = self.text.replace(&key, &value.to_string());
        self
    }

    /// The filled text; panics if a placeholder is left.
    pub fn render(self) -> String {
        if let Some(at) = self.text.find("{{") {
            let end = self.text[at..]
                .find("}}")
                .map_or(self.text.len(), |e| at + e + 2);
            panic!("{}: {} was not given", self.what, &self.text[at..end]);
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::Template;

    #[test]
    fn fills_every_placeholder() {
        let t = Template::new("t", "listen={{ip}}:{{port}} alias={{ip}}")
            .set("ip", "127.0.0.1")
            .set("port", 5060);
        assert_eq!(t.render(), "listen=127.0.0.1:5060 alias=127.0.0.1");
    }

    #[test]
    #[should_panic(expected = "{{port}} was not given")]
    fn a_missing_value_fails() {
        Template::new("t", "{{ip}}:{{port}}")
            .set("ip", "x")
            .render();
    }

    #[test]
    #[should_panic(expected = "no {{nope}} placeholder")]
    fn a_value_for_nothing_fails() {
        let _ = Template::new("t", "{{ip}}").set("nope", 1);
    }
}
