//! Chat prompts. A `.ember` file carries the model's Jinja chat template; the runtime does not
//! run Jinja, it recognizes the template families that small models use and renders them
//! exactly as the template would.

use alloc::string::String;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM, Qwen, many others).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` (Llama 3).
    Llama3,
    /// `[INST] <<SYS>>\n...\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] ...` (Llama 2, TinyLlama chat v0.x).
    Llama2,
    /// `<|user|>\ncontent</s>\n<|assistant|>\n` (Zephyr, TinyLlama-Chat v1.0).
    Zephyr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl ChatFormat {
    /// The family of `template`; ChatML when there is no template at all.
    pub fn detect(template: Option<&str>) -> ChatFormat {
        let Some(t) = template else {
            return ChatFormat::ChatMl;
        };
        if t.contains("<|start_header_id|>") {
            ChatFormat::Llama3
        } else if t.contains("[INST]") {
            ChatFormat::Llama2
        } else if t.contains("<|user|>") {
            ChatFormat::Zephyr
        } else {
            ChatFormat::ChatMl
        }
    }

    /// Appends one message. `first` tells Llama 2 where its single BOS-wrapped turn starts.
    pub fn push_message(self, out: &mut String, role: Role, content: &str) {
        match self {
            ChatFormat::ChatMl => {
                out.push_str("<|im_start|>");
                out.push_str(role.name());
                out.push('\n');
                out.push_str(content);
                out.push_str("<|im_end|>\n");
            }
            ChatFormat::Llama3 => {
                out.push_str("<|start_header_id|>");
                out.push_str(role.name());
                out.push_str("<|end_header_id|>\n\n");
                out.push_str(content.trim());
                out.push_str("<|eot_id|>");
            }
            ChatFormat::Llama2 => match role {
                Role::System => {
                    out.push_str("[INST] <<SYS>>\n");
                    out.push_str(content);
                    out.push_str("\n<</SYS>>\n\n");
                }
                Role::User => {
                    if !out.ends_with("<</SYS>>\n\n") {
                        out.push_str("[INST] ");
                    }
                    out.push_str(content.trim());
                    out.push_str(" [/INST]");
                }
                Role::Assistant => {
                    out.push(' ');
                    out.push_str(content.trim());
                    out.push_str(" </s>");
                }
            },
            ChatFormat::Zephyr => {
                out.push_str("<|");
                out.push_str(role.name());
                out.push_str("|>\n");
                out.push_str(content);
                out.push_str("</s>\n");
            }
        }
    }

    /// What opens the assistant's reply (`add_generation_prompt=True`).
    pub fn push_generation_prompt(self, out: &mut String) {
        match self {
            ChatFormat::ChatMl => out.push_str("<|im_start|>assistant\n"),
            ChatFormat::Llama3 => out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n"),
            ChatFormat::Llama2 => {}
            ChatFormat::Zephyr => out.push_str("<|assistant|>\n"),
        }
    }

    /// Text that ends an assistant turn, for formats whose end marker is plain text.
    pub fn end_of_turn(self) -> &'static str {
        match self {
            ChatFormat::ChatMl => "<|im_end|>",
            ChatFormat::Llama3 => "<|eot_id|>",
            ChatFormat::Llama2 | ChatFormat::Zephyr => "</s>",
        }
    }
}

/// The system prompt a ChatML template inserts when the conversation has none, e.g.
/// SmolLM2's "You are a helpful AI assistant named SmolLM, trained by Hugging Face".
pub fn default_system_prompt(template: &str) -> Option<&str> {
    let marker = "<|im_start|>system\n";
    let start = template.find(marker)? + marker.len();
    let rest = &template[start..];
    let end = rest.find("<|im_end|>")?;
    let text = &rest[..end];
    // A literal, not a Jinja expression.
    if text.contains("{{") || text.contains("{%") || text.contains('\'') && text.contains('+') {
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_matches_the_template() {
        let mut s = String::new();
        let f = ChatFormat::detect(Some("{% for m in messages %}<|im_start|>..."));
        f.push_message(&mut s, Role::System, "Be brief.");
        f.push_message(&mut s, Role::User, "Hi");
        f.push_generation_prompt(&mut s);
        assert_eq!(s, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn finds_smollm_default_system_prompt() {
        let t = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}";
        assert_eq!(
            default_system_prompt(t),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(
            default_system_prompt(
                "{{ '<|im_start|>system\n' + message['content'] + '<|im_end|>' }}"
            ),
            None
        );
    }
}
