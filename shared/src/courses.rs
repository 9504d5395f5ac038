//! Course content rules: question kinds, grading of replies, how a day becomes messages, and
//! the channel limits those messages must fit.

use serde::{Deserialize, Serialize};

/// Longest message WhatsApp carries; no course message may be longer.
pub const WHATSAPP_MAX_CHARS: usize = 4_096;
/// Longest message Twilio sends as SMS (concatenated segments).
pub const SMS_MAX_CHARS: usize = 1_600;
/// Most choices a `choice` question may offer (letters A–J).
pub const MAX_OPTIONS: usize = 10;

/// How a question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    /// Any reply is recorded as the answer.
    Open,
    /// The reply is graded against `correct_answer`.
    Choice,
}

impl QuestionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Choice => "choice",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "choice" => Some(Self::Choice),
            _ => None,
        }
    }
}

/// Lower-case with runs of white space collapsed: how replies and answers are compared.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether `reply` answers a `choice` question correctly: the correct option's text
/// (case- and space-insensitive), or its number (`2`) or letter (`b`, `B)`, `(b)`).
pub fn is_correct(reply: &str, options: &[String], correct_answer: &str) -> bool {
    let reply = normalize(reply);
    let correct = normalize(correct_answer);
    if reply == correct {
        return true;
    }
    let Some(index) = choice_index(&reply) else {
        return false;
    };
    options
        .get(index)
        .is_some_and(|option| normalize(option) == correct)
}

/// `2` → 1, `b` / `b)` / `(b)` / `b.` → 1.
fn choice_index(reply: &str) -> Option<usize> {
    let core = reply.trim_matches(|c: char| c == '(' || c == ')' || c == '.' || c == ' ');
    if let Ok(number) = core.parse::<usize>() {
        return number.checked_sub(1);
    }
    let mut chars = core.chars();
    match (chars.next(), chars.next()) {
        (Some(letter @ 'a'..='z'), None) => Some(letter as usize - 'a' as usize),
        _ => None,
    }
}

/// The message that asks a question: the question, then lettered options for `choice`.
pub fn question_message(question: &str, options: &[String]) -> String {
    let mut message = question.trim().to_owned();
    for (index, option) in options.iter().enumerate() {
        let letter = char::from(b'A' + u8::try_from(index).unwrap_or(25));
        message.push_str(&format!("\n{letter}) {}", option.trim()));
    }
    message
}

/// Character count as the channels count it (Unicode scalar values).
pub fn message_length(message: &str) -> usize {
    message.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Vec<String> {
        vec![
            "Paris".to_owned(),
            "New  York".to_owned(),
            "Lima".to_owned(),
        ]
    }

    #[test]
    fn replies_are_graded_by_text_number_or_letter() {
        let options = options();
        for reply in ["new york", "  NEW   york ", "2", "b", "B)", "(b)", "b."] {
            assert!(is_correct(reply, &options, "New York"), "{reply:?}");
        }
        for reply in ["paris", "1", "a", "4", "z", "", "new york city"] {
            assert!(!is_correct(reply, &options, "New York"), "{reply:?}");
        }
    }

    #[test]
    fn a_choice_question_lists_lettered_options() {
        assert_eq!(
            question_message(" Capital? ", &options()),
            "Capital?\nA) Paris\nB) New  York\nC) Lima"
        );
        assert_eq!(question_message("Why?", &[]), "Why?");
    }
}
