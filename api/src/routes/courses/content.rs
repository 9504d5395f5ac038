//! The course content a client sends (`CourseIn`, `DayIn`, `QuestionIn`), what it gets back,
//! and the checks content must pass: lengths, question kinds and options, and that every
//! message fits a WhatsApp message (4,096 characters). SMS's 1,600 is checked when a delivery
//! to SMS students is created, since a course does not know its students' channels.

use herald_shared::courses::{self, MAX_OPTIONS, QuestionType, WHATSAPP_MAX_CHARS};
use herald_shared::db::courses::{DayRow, NewQuestion, QuestionRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::FieldErrors;

/// Most days a course may have.
pub const MAX_DAYS: usize = 366;
/// Most questions one day may have.
pub const MAX_QUESTIONS_PER_DAY: usize = 20;

/// One day of a course.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayIn {
    /// Read-only: days are numbered 1…n in order. Sending it is an error.
    #[schema(value_type = Option<i32>, read_only)]
    #[serde(default)]
    pub day: Option<serde_json::Value>,
    /// The day's message: 1–4,096 characters (WhatsApp's limit; 1,600 for SMS students is
    /// checked when a delivery is created), surrounding white space trimmed.
    pub text: String,
    /// Questions sent after the text, each as its own message; `null` means none. At most
    /// 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub questions: Option<Vec<QuestionIn>>,
}

/// A quiz question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionIn {
    /// The question; with its lettered options at most 4,096 characters.
    pub question: String,
    /// `open` (any reply is recorded) or `choice` (graded against `correct_answer`).
    #[serde(rename = "type")]
    #[schema(example = "choice")]
    pub kind: String,
    /// For `choice`: 2–10 distinct options, sent lettered A), B), … (`open` questions have
    /// none).
    #[serde(default)]
    #[schema(min_items = 2, max_items = 10)]
    pub options: Option<Vec<String>>,
    /// For `choice`: the text of the correct option (required). For `open`: optional, kept
    /// for reference.
    #[serde(default)]
    pub correct_answer: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuestionOut {
    pub id: Uuid,
    pub question: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub options: Option<Vec<String>>,
    pub correct_answer: Option<String>,
}

impl From<QuestionRow> for QuestionOut {
    fn from(row: QuestionRow) -> Self {
        Self {
            id: row.id,
            question: row.question,
            kind: row.kind,
            options: row.options.map(|options| options.0),
            correct_answer: row.correct_answer,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayOut {
    /// 1-based day number.
    pub day: i32,
    pub text: String,
    pub questions: Vec<QuestionOut>,
}

impl DayOut {
    pub fn new(day: DayRow, questions: Vec<QuestionRow>) -> Self {
        Self {
            day: day.day_number,
            text: day.text,
            questions: questions.into_iter().map(Into::into).collect(),
        }
    }
}

/// Checks a day; `path` prefixes field names (`days[2]`). Returns the text and questions.
pub fn check_day(day: &DayIn, path: &str, errors: &mut FieldErrors) -> (String, Vec<NewQuestion>) {
    if day.day.is_some() {
        errors.add(
            &join(path, "day"),
            "is read-only: days are numbered 1…n in order",
        );
    }
    let text = check_text(&day.text, &join(path, "text"), errors);
    let questions = day.questions.as_deref().unwrap_or_default();
    if questions.len() > MAX_QUESTIONS_PER_DAY {
        errors.add(
            &join(path, "questions"),
            format!("must have at most {MAX_QUESTIONS_PER_DAY} questions"),
        );
    }
    let checked = questions
        .iter()
        .enumerate()
        .filter_map(|(index, question)| {
            check_question(
                question,
                &join(path, &format!("questions[{index}]")),
                errors,
            )
        })
        .collect();
    (text, checked)
}

/// Checks a day's text.
pub fn check_text(text: &str, field: &str, errors: &mut FieldErrors) -> String {
    let text = text.trim();
    if text.is_empty() {
        errors.add(field, "must not be empty");
    } else if courses::message_length(text) > WHATSAPP_MAX_CHARS {
        errors.add(
            field,
            format!(
                "is {} characters; a message may have at most {WHATSAPP_MAX_CHARS} (WhatsApp's limit)",
                courses::message_length(text)
            ),
        );
    }
    text.to_owned()
}

/// Checks a question; `path` prefixes field names.
pub fn check_question(
    question: &QuestionIn,
    path: &str,
    errors: &mut FieldErrors,
) -> Option<NewQuestion> {
    let text = question.question.trim().to_owned();
    if text.is_empty() {
        errors.add(&join(path, "question"), "must not be empty");
    }
    let Some(kind) = QuestionType::parse(&question.kind) else {
        errors.add(&join(path, "type"), "must be `open` or `choice`");
        return None;
    };
    let options: Option<Vec<String>> = question
        .options
        .as_ref()
        .map(|options| options.iter().map(|o| o.trim().to_owned()).collect());
    let correct = question
        .correct_answer
        .as_deref()
        .map(str::trim)
        .map(str::to_owned);
    match kind {
        QuestionType::Open => {
            if options.is_some() {
                errors.add(
                    &join(path, "options"),
                    "only `choice` questions have options",
                );
            }
        }
        QuestionType::Choice => {
            let options_field = join(path, "options");
            match &options {
                None => errors.add(&options_field, "a `choice` question needs options"),
                Some(options) if !(2..=MAX_OPTIONS).contains(&options.len()) => {
                    errors.add(
                        &options_field,
                        format!("must have 2 to {MAX_OPTIONS} options"),
                    );
                }
                Some(options) => {
                    if options.iter().any(String::is_empty) {
                        errors.add(&options_field, "options must not be empty");
                    }
                    let mut seen: Vec<String> =
                        options.iter().map(|o| courses::normalize(o)).collect();
                    seen.sort();
                    seen.dedup();
                    if seen.len() != options.len() {
                        errors.add(&options_field, "options must differ from each other");
                    }
                    let matches = correct.as_deref().is_some_and(|c| {
                        options
                            .iter()
                            .any(|o| courses::normalize(o) == courses::normalize(c))
                    });
                    if !matches {
                        errors.add(
                            &join(path, "correct_answer"),
                            "must be the text of one of the options",
                        );
                    }
                }
            }
        }
    }
    let message = courses::question_message(&text, options.as_deref().unwrap_or_default());
    if courses::message_length(&message) > WHATSAPP_MAX_CHARS {
        errors.add(
            &join(path, "question"),
            format!(
                "the question with its options may have at most {WHATSAPP_MAX_CHARS} characters"
            ),
        );
    }
    Some(NewQuestion {
        question: text,
        kind: kind.as_str(),
        options,
        correct_answer: correct,
    })
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}
