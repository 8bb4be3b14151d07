//! The model's own chat template (`tokenizer.chat_template`, Jinja), rendered the way
//! transformers' `apply_chat_template` renders it, and the prompts built from it for `run --chat`
//! and `chat`.
//!
//! transformers compiles the template in an `ImmutableSandboxedEnvironment(trim_blocks=True,
//! lstrip_blocks=True)` with the `loopcontrols` extension, overrides the `tojson` filter with
//! `json.dumps` (no HTML escaping, `ensure_ascii=False`), adds the globals `raise_exception`,
//! `strftime_now`, `namespace` and `dict`, and renders with `messages`, `tools` and `documents`
//! (`None` here), `add_generation_prompt` and the special tokens (`bos_token`, `eos_token`,
//! `unk_token`, `pad_token`). The rendered text is then tokenized with `add_special_tokens=False`:
//! BOS is there only if the template writes `{{ bos_token }}`. minijinja runs the template; its
//! `pycompat` callback gives Python's string and dict methods (`.strip()`, `.startswith()`,
//! `.split()`, `.items()`, ...), which HF templates call.
//!
//! A file without a template falls back to the built-in [`ChatFormat`] (ChatML), with a note.

use ember_runtime::chat::{default_system_prompt, ChatFormat, Role};
use ember_runtime::tokenizer::Tokenizer;

#[cfg(feature = "chat-templates")]
#[allow(unused_imports)] // DateTime, FUEL: for tests/chat_templates.rs
pub use jinja::{ChatTemplate, DateTime, SpecialTokens, FUEL};

/// Turns a conversation into the prompt text: the model's template, or a built-in format for a
/// file without one.
#[derive(Debug)]
pub enum Prompter {
    #[cfg(feature = "chat-templates")]
    Template(Box<ChatTemplate>),
    /// A built-in format, with the system prompt the template would insert when the
    /// conversation has none (SmolLM2's); `encode` adds BOS as the tokenizer does for text.
    Builtin {
        format: ChatFormat,
        default_system: Option<String>,
    },
}

impl Prompter {
    /// The prompter for `tokenizer`'s template. A file without a template (or with one that
    /// does not compile, or a build without the `chat-templates` feature) gets a built-in
    /// format and a one-line note on stderr naming `model`.
    pub fn new(tokenizer: &Tokenizer, model: &str) -> Prompter {
        let Some(source) = tokenizer.chat_template() else {
            eprintln!(
                "note: {model} has no chat template; using ChatML (<|im_start|>role ... <|im_end|>)"
            );
            return Prompter::Builtin {
                format: ChatFormat::ChatMl,
                default_system: None,
            };
        };
        #[cfg(feature = "chat-templates")]
        let why = match ChatTemplate::new(source, SpecialTokens::from_tokenizer(tokenizer)) {
            Ok(t) => return Prompter::Template(Box::new(t)),
            Err(e) => format!("its chat template does not compile ({e})"),
        };
        #[cfg(not(feature = "chat-templates"))]
        let why = "this ember is built without Jinja (feature chat-templates)";
        let format = ChatFormat::detect(Some(source));
        eprintln!("note: {model}: {why}; using the built-in {format:?} format");
        Prompter::Builtin {
            format,
            default_system: default_system_prompt(source).map(str::to_string),
        }
    }

    /// The conversation as prompt text, ending with the opener of the assistant's reply.
    pub fn render<R: AsRef<str>, C: AsRef<str>>(
        &self,
        messages: &[(R, C)],
    ) -> Result<String, String> {
        match self {
            #[cfg(feature = "chat-templates")]
            Prompter::Template(t) => t.render(messages, true),
            Prompter::Builtin {
                format,
                default_system,
            } => {
                let mut out = String::new();
                let has_system = messages.first().is_some_and(|m| m.0.as_ref() == "system");
                if let (false, Some(system)) = (has_system, default_system) {
                    format.push_message(&mut out, Role::System, system);
                }
                for (role, content) in messages {
                    let role = match role.as_ref() {
                        "system" => Role::System,
                        "assistant" => Role::Assistant,
                        _ => Role::User,
                    };
                    format.push_message(&mut out, role, content.as_ref());
                }
                format.push_generation_prompt(&mut out);
                Ok(out)
            }
        }
    }

    /// The ids of prompt text. `start`: the text begins the conversation (a built-in format
    /// then gets the tokenizer's BOS; a template writes its own).
    pub fn encode(&self, tokenizer: &Tokenizer, text: &str, start: bool) -> Vec<u32> {
        match self {
            Prompter::Builtin { .. } if start => {
                let mut ids = Vec::new();
                tokenizer.encode(text, &mut ids);
                ids
            }
            _ => tokenizer.encode_plain(text),
        }
    }

    /// Text that ends an assistant turn, as a stop string.
    pub fn end_of_turn(&self) -> Option<String> {
        match self {
            #[cfg(feature = "chat-templates")]
            Prompter::Template(t) => t.end_of_turn(),
            Prompter::Builtin { format, .. } => Some(format.end_of_turn().to_string()),
        }
    }
}

/// The Jinja side: needs the `chat-templates` feature (minijinja), which the edge binary
/// leaves out unless asked for.
#[cfg(feature = "chat-templates")]
mod jinja {
    use std::fmt::Write as _;

    use ember_runtime::tokenizer::Tokenizer;
    use minijinja::syntax::SyntaxConfig;
    use minijinja::value::{Kwargs, ValueKind};
    use minijinja::{context, Environment, Error, ErrorKind, Value};

    /// The special tokens' text, as `apply_chat_template` passes them to the template.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct SpecialTokens {
        pub bos: Option<String>,
        pub eos: Option<String>,
        pub unk: Option<String>,
        pub pad: Option<String>,
    }

    impl SpecialTokens {
        /// The text of the tokenizer's BOS, EOS, UNK and PAD tokens (those it has).
        pub fn from_tokenizer(tokenizer: &Tokenizer) -> Self {
            let text = |id: Option<u32>| {
                id.map(|id| String::from_utf8_lossy(tokenizer.token_bytes(id)).into_owned())
            };
            SpecialTokens {
                bos: text(tokenizer.bos_id()),
                eos: text(tokenizer.eos_id()),
                unk: text(tokenizer.unk_id()),
                pad: text(tokenizer.pad_id()),
            }
        }
    }

    /// A local date and time, for `strftime_now`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DateTime {
        pub year: i64,
        /// 1..=12
        pub month: u32,
        /// 1..=31
        pub day: u32,
        pub hour: u32,
        pub minute: u32,
        pub second: u32,
    }

    impl DateTime {
        /// The civil date and time (UTC) `secs` seconds after 1970-01-01T00:00:00.
        pub fn from_unix(secs: i64) -> Self {
            let days = secs.div_euclid(86_400);
            let rem = secs.rem_euclid(86_400) as u32;
            // Howard Hinnant's days-to-civil.
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z.rem_euclid(146_097);
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
            let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
            let year = yoe + era * 400 + i64::from(month <= 2);
            DateTime {
                year,
                month,
                day,
                hour: rem / 3600,
                minute: rem / 60 % 60,
                second: rem % 60,
            }
        }

        /// Now, in local time where the platform says what that is (Python's `datetime.now()`),
        /// else UTC.
        pub fn now() -> Self {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            DateTime::from_unix(secs + local_offset(secs))
        }

        fn leap(&self) -> bool {
            self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0)
        }

        fn day_of_year(&self) -> u32 {
            const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
            BEFORE[(self.month - 1) as usize] + self.day + u32::from(self.month > 2 && self.leap())
        }

        /// 0 = Monday.
        fn weekday(&self) -> u32 {
            // Days since 1970-01-01 (a Thursday), from the civil date.
            let (y, m) = if self.month <= 2 {
                (self.year - 1, self.month + 9)
            } else {
                (self.year, self.month - 3)
            };
            let era = y.div_euclid(400);
            let yoe = y.rem_euclid(400);
            let doy = (153 * i64::from(m) + 2) / 5 + i64::from(self.day) - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            (days + 3).rem_euclid(7) as u32
        }

        /// Python's `strftime` for the common directives (C locale); others are kept as written.
        pub fn strftime(&self, format: &str) -> String {
            const DAYS: [&str; 7] = [
                "Monday",
                "Tuesday",
                "Wednesday",
                "Thursday",
                "Friday",
                "Saturday",
                "Sunday",
            ];
            const MONTHS: [&str; 12] = [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ];
            let mut out = String::new();
            let mut chars = format.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    out.push(c);
                    continue;
                }
                let day = DAYS[self.weekday() as usize];
                let month = MONTHS[(self.month - 1) as usize];
                let hour12 = (self.hour + 11) % 12 + 1;
                let _ = match chars.next() {
                    Some('Y') => write!(out, "{}", self.year),
                    Some('y') => write!(out, "{:02}", self.year.rem_euclid(100)),
                    Some('m') => write!(out, "{:02}", self.month),
                    Some('d') => write!(out, "{:02}", self.day),
                    Some('e') => write!(out, "{:2}", self.day),
                    Some('H') => write!(out, "{:02}", self.hour),
                    Some('I') => write!(out, "{hour12:02}"),
                    Some('M') => write!(out, "{:02}", self.minute),
                    Some('S') => write!(out, "{:02}", self.second),
                    Some('p') => out.write_str(if self.hour < 12 { "AM" } else { "PM" }),
                    Some('j') => write!(out, "{:03}", self.day_of_year()),
                    Some('a') => out.write_str(&day[..3]),
                    Some('A') => out.write_str(day),
                    Some('b') | Some('h') => out.write_str(&month[..3]),
                    Some('B') => out.write_str(month),
                    Some('u') => write!(out, "{}", self.weekday() + 1),
                    Some('w') => write!(out, "{}", (self.weekday() + 1) % 7),
                    Some('F') => write!(out, "{}-{:02}-{:02}", self.year, self.month, self.day),
                    Some('D') => write!(
                        out,
                        "{:02}/{:02}/{:02}",
                        self.month,
                        self.day,
                        self.year.rem_euclid(100)
                    ),
                    Some('T') => write!(
                        out,
                        "{:02}:{:02}:{:02}",
                        self.hour, self.minute, self.second
                    ),
                    Some('%') => out.write_str("%"),
                    Some(other) => write!(out, "%{other}"),
                    None => out.write_str("%"),
                };
            }
            out
        }
    }

    /// Seconds east of UTC of the local time zone at `secs`.
    #[cfg(unix)]
    fn local_offset(secs: i64) -> i64 {
        let t = secs as libc::time_t;
        // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid for the call.
        unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&t, &mut tm).is_null() {
                return 0;
            }
            tm.tm_gmtoff as i64
        }
    }

    #[cfg(not(unix))]
    fn local_offset(_secs: i64) -> i64 {
        0
    }

    /// A compiled chat template with its special tokens.
    pub struct ChatTemplate {
        env: Environment<'static>,
        special: SpecialTokens,
    }

    impl std::fmt::Debug for ChatTemplate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ChatTemplate")
                .field("special", &self.special)
                .finish_non_exhaustive()
        }
    }

    const NAME: &str = "chat_template";

    fn describe(e: &Error) -> String {
        let mut s = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            let _ = write!(s, ": {inner}");
            source = inner.source();
        }
        s
    }

    /// Template instructions one render may execute. The fixture templates take 56-84 a
    /// message, so this covers about 60,000 messages (tests/chat_templates.rs renders 2,000);
    /// a template that loops over a message's characters inside another such loop (found by
    /// fuzzing) stops with an error in about 0.3 s instead of running on for seconds or more.
    #[cfg(not(fuzzing))]
    pub const FUEL: u64 = 5_000_000;
    /// Under cargo-fuzz (ASan and debug assertions, about 30 times slower here) a hundredth:
    /// still hundreds of messages, and a template the fuzzer makes loop costs it about 0.1 s,
    /// not seconds (at 500,000 a 7-minute run managed 390 executions a second, a third of the
    /// rate before fuel).
    #[cfg(fuzzing)]
    pub const FUEL: u64 = 50_000;

    impl ChatTemplate {
        /// Compiles `source`; `strftime_now` reads the system clock.
        pub fn new(source: &str, special: SpecialTokens) -> Result<Self, String> {
            Self::build(source, special, None)
        }

        /// Same, with `strftime_now` reading the fixed `clock` (for tests).
        #[allow(dead_code)] // tests/chat_templates.rs
        pub fn with_clock(
            source: &str,
            special: SpecialTokens,
            clock: DateTime,
        ) -> Result<Self, String> {
            Self::build(source, special, Some(clock))
        }

        fn build(
            source: &str,
            special: SpecialTokens,
            clock: Option<DateTime>,
        ) -> Result<Self, String> {
            let mut env = Environment::new();
            let syntax = SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| describe(&e))?;
            env.set_syntax(syntax);
            // A template is untrusted input (it comes with the model): a bound on the
            // instructions one render may execute turns a runaway loop into an error.
            env.set_fuel(Some(FUEL));
            env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
            env.add_function(
                "raise_exception",
                |message: String| -> Result<Value, Error> {
                    Err(Error::new(ErrorKind::InvalidOperation, message))
                },
            );
            env.add_function("strftime_now", move |format: String| {
                clock.unwrap_or_else(DateTime::now).strftime(&format)
            });
            env.add_filter("tojson", tojson);
            env.add_template_owned(NAME, source.to_string())
                .map_err(|e| describe(&e))?;
            Ok(ChatTemplate { env, special })
        }

        /// Renders `messages` (role, content) as `apply_chat_template(messages,
        /// add_generation_prompt=...)` does.
        pub fn render<R: AsRef<str>, C: AsRef<str>>(
            &self,
            messages: &[(R, C)],
            add_generation_prompt: bool,
        ) -> Result<String, String> {
            let messages: Vec<Value> = messages
                .iter()
                .map(|(role, content)| context! { role => role.as_ref(), content => content.as_ref() })
                .collect();
            let s = &self.special;
            // Tokens the tokenizer lacks stay undefined, as in transformers' special_tokens_map.
            let ctx = context! {
                messages => messages,
                tools => Value::from(()),
                documents => Value::from(()),
                add_generation_prompt => add_generation_prompt,
                bos_token => s.bos.as_deref().map(Value::from).unwrap_or(Value::UNDEFINED),
                eos_token => s.eos.as_deref().map(Value::from).unwrap_or(Value::UNDEFINED),
                unk_token => s.unk.as_deref().map(Value::from).unwrap_or(Value::UNDEFINED),
                pad_token => s.pad.as_deref().map(Value::from).unwrap_or(Value::UNDEFINED),
            };
            let template = self.env.get_template(NAME).map_err(|e| describe(&e))?;
            template.render(ctx).map_err(|e| describe(&e))
        }

        /// The text that closes an assistant turn (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`),
        /// found by rendering a short conversation; `None` if the template writes nothing there.
        pub fn end_of_turn(&self) -> Option<String> {
            const REPLY: &str = "E0T9PROBE";
            let tries: [&[(&str, &str)]; 2] = [
                &[("user", "Hi"), ("assistant", REPLY)],
                &[("system", "S"), ("user", "Hi"), ("assistant", REPLY)],
            ];
            for messages in tries {
                let Ok(text) = self.render(messages, false) else {
                    continue;
                };
                let Some(at) = text.rfind(REPLY) else {
                    continue;
                };
                let end = text[at + REPLY.len()..].trim();
                return (!end.is_empty()).then(|| end.to_string());
            }
            None
        }
    }

    /// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
    /// sort_keys=False)`, with no HTML escaping (unlike Jinja's own filter).
    fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
        let indent = match kwargs.get::<Option<Value>>("indent")?.or(indent) {
            None => None,
            Some(v) if v.is_none() || v.is_undefined() => None,
            Some(v) => match v.as_str() {
                Some(s) => Some(s.to_string()),
                None => Some(" ".repeat(v.as_usize().ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, "tojson: bad indent")
                })?)),
            },
        };
        let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
        let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
        let (item_sep, key_sep) = match kwargs.get::<Option<Vec<String>>>("separators")? {
            Some(s) if s.len() == 2 => (s[0].clone(), s[1].clone()),
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: separators must be (item, key)",
                ))
            }
            None if indent.is_some() => (",".to_string(), ": ".to_string()),
            None => (", ".to_string(), ": ".to_string()),
        };
        kwargs.assert_all_used()?;
        let json = PyJson {
            indent,
            item_sep,
            key_sep,
            ensure_ascii,
            sort_keys,
        };
        let mut out = String::new();
        json.write(value, 0, &mut out)?;
        Ok(Value::from(out))
    }

    struct PyJson {
        indent: Option<String>,
        item_sep: String,
        key_sep: String,
        ensure_ascii: bool,
        sort_keys: bool,
    }

    impl PyJson {
        fn newline(&self, level: usize, out: &mut String) {
            if let Some(indent) = &self.indent {
                out.push('\n');
                for _ in 0..level {
                    out.push_str(indent);
                }
            }
        }

        fn string(&self, s: &str, out: &mut String) {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            let _ = write!(out, "\\u{unit:04x}");
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }

        fn write(&self, v: &Value, level: usize, out: &mut String) -> Result<(), Error> {
            match v.kind() {
                ValueKind::Undefined | ValueKind::None => out.push_str("null"),
                ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
                ValueKind::Number => {
                    if let Some(i) = v.as_i64().filter(|_| v.is_integer()) {
                        let _ = write!(out, "{i}");
                    } else {
                        let f = f64::try_from(v.clone())?;
                        out.push_str(&py_float(f));
                    }
                }
                ValueKind::String => self.string(v.as_str().unwrap_or_default(), out),
                ValueKind::Map => {
                    let mut keys: Vec<Value> = v.try_iter()?.collect();
                    if self.sort_keys {
                        keys.sort();
                    }
                    if keys.is_empty() {
                        out.push_str("{}");
                        return Ok(());
                    }
                    out.push('{');
                    for (i, k) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push_str(&self.item_sep);
                        }
                        self.newline(level + 1, out);
                        match k.as_str() {
                            Some(s) => self.string(s, out),
                            None => self.string(&k.to_string(), out),
                        }
                        out.push_str(&self.key_sep);
                        self.write(&v.get_item(k)?, level + 1, out)?;
                    }
                    self.newline(level, out);
                    out.push('}');
                }
                ValueKind::Seq | ValueKind::Iterable => {
                    let items: Vec<Value> = v.try_iter()?.collect();
                    if items.is_empty() {
                        out.push_str("[]");
                        return Ok(());
                    }
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(&self.item_sep);
                        }
                        self.newline(level + 1, out);
                        self.write(item, level + 1, out)?;
                    }
                    self.newline(level, out);
                    out.push(']');
                }
                _ => self.string(&v.to_string(), out),
            }
            Ok(())
        }
    }

    /// Python's `repr(float)`: shortest round-trip digits, `.0` on integral values, `e+XX` above
    /// 1e16 and below 1e-4.
    fn py_float(f: f64) -> String {
        if f.is_nan() {
            return "NaN".into();
        }
        if f.is_infinite() {
            return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
        }
        let abs = f.abs();
        if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
            // Rust's `{:e}` gives "1e16" / "1.5e-5"; Python writes "1e+16" / "1.5e-05".
            let s = format!("{f:e}");
            let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{mantissa}e{sign}{:02}", exp.abs());
        }
        let s = format!("{f}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn special() -> SpecialTokens {
            SpecialTokens {
                bos: Some("<s>".into()),
                eos: Some("</s>".into()),
                ..Default::default()
            }
        }

        #[test]
        fn dates() {
            let d = DateTime::from_unix(1_741_348_800); // 2025-03-07 12:00:00 UTC, a Friday
            assert_eq!(
                (d.year, d.month, d.day, d.hour, d.minute, d.second),
                (2025, 3, 7, 12, 0, 0)
            );
            assert_eq!(d.strftime("%d %b %Y"), "07 Mar 2025");
            assert_eq!(d.strftime("%A %B %j %I%p %%"), "Friday March 066 12PM %");
            let d = DateTime::from_unix(951_782_400); // 2000-02-29
            assert_eq!(d.strftime("%Y-%m-%d %a"), "2000-02-29 Tue");
            assert_eq!(
                DateTime::from_unix(0).strftime("%F %T %a"),
                "1970-01-01 00:00:00 Thu"
            );
        }

        #[test]
        fn tojson_is_python_json_dumps() {
            // Expected strings from Python's json.dumps with the same arguments.
            let t = ChatTemplate::new(
                concat!(
                    "{% set x = {'b': [1, 2.5, none, true], 'a': 'q'} %}",
                    "{{ x | tojson }}|{{ x | tojson(indent=2) }}|",
                    "{{ x | tojson(separators=(',', ':'), sort_keys=true) }}|",
                    "{{ 'é<>&\"' | tojson }}|{{ 'é' | tojson(ensure_ascii=true) }}"
                ),
                special(),
            )
            .unwrap();
            let out = t.render::<&str, &str>(&[], false).unwrap();
            let parts: Vec<&str> = out.split('|').collect();
            // minijinja map literals iterate in key order (Python: insertion order; equal here
            // after sort_keys, and the unsorted forms list the keys as minijinja holds them).
            assert!(
                parts[0] == r#"{"a": "q", "b": [1, 2.5, null, true]}"#
                    || parts[0] == r#"{"b": [1, 2.5, null, true], "a": "q"}"#,
                "{}",
                parts[0]
            );
            assert!(
                parts[1].contains("\n  \"b\": [\n    1,\n    2.5,\n    null,\n    true\n  ]"),
                "{}",
                parts[1]
            );
            assert_eq!(parts[2], r#"{"a":"q","b":[1,2.5,null,true]}"#);
            assert_eq!(parts[3], r#""é<>&\"""#);
            assert_eq!(parts[4], r#""\u00e9""#);
            assert_eq!(py_float(1.0), "1.0");
            assert_eq!(py_float(1e16), "1e+16");
            assert_eq!(py_float(1.5e-5), "1.5e-05");
            assert_eq!(py_float(0.1), "0.1");
        }

        #[test]
        fn raise_exception_and_python_methods() {
            let t = ChatTemplate::new(
                "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0].content.strip().split(',')[1].upper() }}{{ bos_token }}{{ pad_token }}",
                special(),
            )
            .unwrap();
            assert_eq!(t.render(&[("user", "  a,b ")], false).unwrap(), "B<s>");
            let e = t.render(&[("system", "x")], false).unwrap_err();
            assert!(e.contains("first must be user"), "{e}");
        }

        #[test]
        fn end_of_turn_markers() {
            let chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
            let t = ChatTemplate::new(chatml, special()).unwrap();
            assert_eq!(t.end_of_turn().as_deref(), Some("<|im_end|>"));
            let none = ChatTemplate::new(
                "{% for m in messages %}{{ m.content }}{% endfor %}",
                special(),
            )
            .unwrap();
            assert_eq!(none.end_of_turn(), None);
        }
    }
}
