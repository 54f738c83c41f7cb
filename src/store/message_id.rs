//! A chat message's id as the archive holds it ([`super::ArchivedMessage::id`]).
//!
//! The hub stamps every message with a UUIDv7, 36 characters hyphenated; held inline, an
//! id costs no allocation when a message is stamped, copied into its archive event or
//! read back from a store (the relay's path used to allocate a `String` per message for
//! it). Any other id (older data, other writers, tests) is kept on the heap exactly as it
//! came. Either way it reads, compares, hashes and serialises as the string it is, so what
//! is stored and sent does not change.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest id held inline: a hyphenated UUID.
const INLINE: usize = 36;

/// A message's id: a string, inline up to 36 bytes.
#[derive(Clone)]
pub struct MessageId(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl MessageId {
    /// The id `id`, inline when it fits.
    pub fn new(id: &str) -> Self {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0u8; INLINE];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                Self(Repr::Inline { len, bytes })
            }
            _ => Self(Repr::Heap(id.into())),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Copied whole from a `str`, so always UTF-8.
            Repr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Repr::Heap(id) => id,
        }
    }
}

impl Deref for MessageId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MessageId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for MessageId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<&String> for MessageId {
    fn from(id: &String) -> Self {
        Self::new(id)
    }
}

impl From<String> for MessageId {
    fn from(id: String) -> Self {
        if id.len() <= INLINE {
            Self::new(&id)
        } else {
            Self(Repr::Heap(id.into_boxed_str()))
        }
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        match id.0 {
            Repr::Heap(id) => id.into_string(),
            Repr::Inline { .. } => id.as_str().to_owned(),
        }
    }
}

impl PartialEq for MessageId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for MessageId {}

impl PartialEq<str> for MessageId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MessageId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for MessageId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<MessageId> for str {
    fn eq(&self, other: &MessageId) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<MessageId> for &str {
    fn eq(&self, other: &MessageId) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<MessageId> for String {
    fn eq(&self, other: &MessageId) -> bool {
        self == other.as_str()
    }
}

impl Hash for MessageId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for MessageId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MessageId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MessageId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a message id (a string)")
            }
            fn visit_str<E: serde::de::Error>(self, id: &str) -> Result<MessageId, E> {
                Ok(MessageId::new(id))
            }
            fn visit_string<E: serde::de::Error>(self, id: String) -> Result<MessageId, E> {
                Ok(MessageId::from(id))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inline or on the heap, an id is the string it was made of: read, compared, ordered
    /// and serialised the same (JSON and BSON store it as a plain string).
    #[test]
    fn an_id_is_the_string_it_was_made_of() {
        let uuid = "0193a7c2-5b1e-7c3d-8e4f-1a2b3c4d5e6f";
        let long = format!("{uuid}-{uuid}");
        for id in ["", "m1", uuid, &long] {
            let held = MessageId::from(id);
            assert_eq!(held.as_str(), id);
            assert_eq!(held, id);
            assert_eq!(held, MessageId::from(id.to_owned()));
            assert_eq!(String::from(held.clone()), id);
            assert_eq!(held.to_string(), id);
            assert_eq!(format!("{held:?}"), format!("{id:?}"));
            let json = serde_json::to_string(&held).unwrap();
            assert_eq!(json, serde_json::to_string(id).unwrap());
            assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), held);
            let doc = bson::doc! { "id": bson::to_bson(&held).unwrap() };
            assert_eq!(doc.get_str("id").unwrap(), id);
        }
        assert!(
            matches!(MessageId::from(uuid).0, Repr::Inline { .. }),
            "a UUID is held inline"
        );
        let (a, b) = (MessageId::from("a"), MessageId::from("b"));
        assert!(a < b, "ordered as their strings");
    }
}
