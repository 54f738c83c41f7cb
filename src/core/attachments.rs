//! Which attachments a chat message may carry, and the names files are kept under (pure).
//!
//! An attachment is uploaded over HTTP first (for one conversation, by one side of it);
//! a `message` frame then names it by id. The hub accepts a message only when every id
//! it names was uploaded by that very sender for that very conversation: an id is no
//! capability of its own, so a guessed or leaked id cannot pull another chat's file into
//! this one, nor can a customer pass an agent's upload off as theirs.

/// The most attachments one message carries.
pub const MAX_PER_MESSAGE: usize = 10;
/// The longest file name kept (characters); longer names are cut, keeping the extension.
pub const MAX_NAME_CHARS: usize = 200;

/// Who uploaded a file: the customer of its conversation, an agent (by account id), or a
/// member of staff in a buddy chat (by account id: buddy chats' files are theirs and the
/// admins', not every agent's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uploader {
    Customer,
    Agent(String),
    Buddy(String),
}

/// What the rule needs to know of an uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload<'a> {
    pub conversation: &'a str,
    pub uploader: &'a Uploader,
}

/// Why a message's attachments are refused: a code and a message for the sender.
pub type Refusal = (&'static str, String);

/// Checks the attachment ids of a message `sender` sends in `conversation`; `uploaded`
/// finds an upload by id. Ok: the ids, each once, in the order sent.
pub fn check_ids<'a, F>(
    ids: &[String],
    conversation: &str,
    sender: &Uploader,
    uploaded: F,
) -> Result<Vec<String>, Refusal>
where
    F: Fn(&str) -> Option<Upload<'a>>,
{
    if ids.len() > MAX_PER_MESSAGE {
        return Err((
            "too_many_attachments",
            format!(
                "a message carries at most {MAX_PER_MESSAGE} attachments; this one names {}",
                ids.len()
            ),
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if kept.contains(id) {
            continue;
        }
        // One answer for "no such file" and "not yours": which ids exist is nobody's business.
        let unknown = || {
            (
                "unknown_attachment",
                format!("no attachment {id:?} of yours in this chat"),
            )
        };
        let upload = uploaded(id).ok_or_else(unknown)?;
        if upload.conversation != conversation || upload.uploader != sender {
            return Err(unknown());
        }
        kept.push(id.clone());
    }
    Ok(kept)
}

/// Why a message's text is refused, given whether it carries attachments: over the
/// length limit always; blank only when it carries none (a file needs no caption).
pub fn text_refusal(text: &str, max_chars: usize, has_attachments: bool) -> Option<Refusal> {
    let length = text.chars().count();
    if length > max_chars {
        return Some((
            "message_too_long",
            format!("messages are limited to {max_chars} characters; this one has {length}"),
        ));
    }
    if text.trim().is_empty() && !has_attachments {
        return Some(("empty_message", "a message needs some text".to_string()));
    }
    None
}

/// The name a file is kept and shown under, from the name its sender's system gave it:
/// the last path component only (no `../` tricks, no folders of the sender's disk), no
/// control or bidirectional-override characters, at most [`MAX_NAME_CHARS`] characters
/// (the extension kept). `None` when nothing printable is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_string();
    if cleaned.is_empty() {
        return None;
    }
    let count = cleaned.chars().count();
    if count <= MAX_NAME_CHARS {
        return Some(cleaned);
    }
    let extension: String = match cleaned.rsplit_once('.') {
        Some((_, ext)) if ext.chars().count() <= 10 => format!(".{ext}"),
        _ => String::new(),
    };
    let keep = MAX_NAME_CHARS - extension.chars().count();
    Some(cleaned.chars().take(keep).collect::<String>() + &extension)
}

/// Characters that reorder how a name is displayed (`invoice\u{202E}fdp.exe` shows as
/// `invoiceexe.pdf`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploads(id: &str) -> Option<Upload<'static>> {
        static CUSTOMER: Uploader = Uploader::Customer;
        static AGENT: std::sync::LazyLock<Uploader> = std::sync::LazyLock::new(|| Uploader::Agent("ann".into()));
        match id {
            "c1" | "c2" => Some(Upload {
                conversation: "chat-1",
                uploader: &CUSTOMER,
            }),
            "a1" => Some(Upload {
                conversation: "chat-1",
                uploader: &AGENT,
            }),
            "other" => Some(Upload {
                conversation: "chat-2",
                uploader: &CUSTOMER,
            }),
            _ => None,
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_senders_own_uploads_for_this_conversation_are_taken() {
        let customer = Uploader::Customer;
        let ann = Uploader::Agent("ann".into());
        assert_eq!(
            check_ids(&ids(&["c1", "c2", "c1"]), "chat-1", &customer, uploads),
            Ok(ids(&["c1", "c2"]))
        );
        assert_eq!(check_ids(&ids(&["a1"]), "chat-1", &ann, uploads), Ok(ids(&["a1"])));
        for (list, sender) in [
            (&["a1"][..], &customer),
            (&["c1"][..], &ann),
            (&["other"][..], &customer),
            (&["c1", "nope"][..], &customer),
            (&["a1"][..], &Uploader::Agent("bob".into())),
            // Ann's upload as an agent is not hers as a buddy (nor the other way round).
            (&["a1"][..], &Uploader::Buddy("ann".into())),
        ] {
            let refusal = check_ids(&ids(list), "chat-1", sender, uploads).unwrap_err();
            assert_eq!(refusal.0, "unknown_attachment", "{list:?} from {sender:?}");
        }
        let many: Vec<String> = (0..=MAX_PER_MESSAGE).map(|i| format!("c{i}")).collect();
        assert_eq!(
            check_ids(&many, "chat-1", &customer, uploads).unwrap_err().0,
            "too_many_attachments"
        );
    }

    #[test]
    fn blank_text_is_fine_with_a_file_only() {
        assert_eq!(text_refusal("  ", 10, false).unwrap().0, "empty_message");
        assert_eq!(text_refusal("", 10, true), None);
        assert_eq!(text_refusal(&"x".repeat(11), 10, true).unwrap().0, "message_too_long");
    }

    #[test]
    fn names_lose_folders_controls_and_excess() {
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("C:\\Users\\me\\shot 1.png").as_deref(), Some("shot 1.png"));
        assert_eq!(clean_name("a\u{0}b\nc.txt").as_deref(), Some("abc.txt"));
        assert_eq!(clean_name("invoice\u{202E}fdp.exe").as_deref(), Some("invoicefdp.exe"));
        assert_eq!(clean_name(".hidden").as_deref(), Some("hidden"));
        assert_eq!(clean_name("/"), None);
        assert_eq!(clean_name(" \u{7} "), None);
        let long = format!("{}.pdf", "x".repeat(10_000));
        let kept = clean_name(&long).unwrap();
        assert_eq!(kept.chars().count(), MAX_NAME_CHARS);
        assert!(kept.ends_with(".pdf"));
    }
}
