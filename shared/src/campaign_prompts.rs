//! The prompt of a campaign step: a MiniJinja template (sandboxed: no file system, no
//! network, no code beyond the template language) rendered per prospect into the message the
//! LLM is asked for.
//!
//! What a prompt may name:
//! - the prospect: `email`, `first_name`, `last_name`, `company`, `title`, `timezone`, and
//!   `attributes.<name>` (any of the person's free-form attributes; one a prospect lacks
//!   renders empty, since attributes differ from person to person);
//! - the earlier steps' texts as sent to that prospect: `step1.subject`, `step1.body`, …
//!   (step N may name steps 1 to N − 1).
//!
//! Anything else is refused when the campaign is written, naming the variable, instead of
//! rendering empty into thousands of e-mails.

use std::collections::BTreeMap;

use minijinja::Environment;
use serde_json::{Value, json};

use crate::db::campaign_messages::{EarlierStep, Job};

/// The prospect's own fields a prompt may name.
pub const PERSON_FIELDS: [&str; 6] = [
    "email",
    "first_name",
    "last_name",
    "company",
    "title",
    "timezone",
];

/// Checks the prompt of step `position` (1-based): it parses, and every variable it names is
/// one it may (see the module doc). The error says what is wrong, naming the variable.
pub fn check(prompt: &str, position: usize) -> Result<(), String> {
    let env = Environment::new();
    let template = env.template_from_str(prompt).map_err(|err| {
        format!(
            "is not a valid template: {}",
            err.detail().unwrap_or("syntax error")
        )
    })?;
    let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    names.sort();
    for name in names {
        if !allowed(&name, position) {
            return Err(format!(
                "names the unknown variable `{name}`; a prompt may name {}, attributes.<name>{}",
                PERSON_FIELDS.join(", "),
                if position > 1 {
                    format!(" and step1 … step{}'s subject and body", position - 1)
                } else {
                    String::new()
                }
            ));
        }
    }
    Ok(())
}

/// Renders the step's prompt for the job's prospect, with the prospect's earlier steps as
/// written. A template that checked out when the campaign was written renders; the error is
/// for one that does not (an engine error, such as a loop too deep).
pub fn render(job: &Job, earlier: &[EarlierStep]) -> Result<String, String> {
    let mut context: BTreeMap<String, Value> = BTreeMap::from([
        ("email".to_owned(), json!(job.email)),
        ("first_name".to_owned(), json!(job.first_name)),
        ("last_name".to_owned(), json!(job.last_name)),
        ("company".to_owned(), json!(job.company)),
        ("title".to_owned(), json!(job.title)),
        ("timezone".to_owned(), json!(job.timezone)),
        ("attributes".to_owned(), json!(job.attributes.0)),
    ]);
    for step in earlier {
        context.insert(
            format!("step{}", step.position),
            json!({"subject": step.subject, "body": step.body}),
        );
    }
    let env = Environment::new();
    env.render_str(&job.prompt, context)
        .map_err(|err| format!("the step's prompt could not be rendered: {err}"))
}

fn allowed(name: &str, position: usize) -> bool {
    let mut parts = name.splitn(2, '.');
    let root = parts.next().unwrap_or_default();
    let rest = parts.next();
    if root == "attributes" {
        return true;
    }
    if PERSON_FIELDS.contains(&root) {
        return rest.is_none();
    }
    match root
        .strip_prefix("step")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(step) if (1..position).contains(&step) => {
            matches!(rest, None | Some("subject" | "body"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn a_prompt_may_name_the_prospect_its_attributes_and_earlier_steps_only() {
        assert_eq!(
            check(
                "Write to {{ first_name }} at {{ company }} about {{ attributes.industry }}.",
                1
            ),
            Ok(())
        );
        assert_eq!(
            check("Follow up on: {{ step1.subject }} / {{ step2.body }}", 3),
            Ok(())
        );
        assert!(
            check("{{ step1.subject }}", 1)
                .unwrap_err()
                .contains("`step1.subject`")
        );
        assert!(
            check("{{ step3.body }}", 3)
                .unwrap_err()
                .contains("`step3.body`")
        );
        assert!(
            check("Hi {{ frist_name }}", 1)
                .unwrap_err()
                .contains("`frist_name`")
        );
        assert!(check("{{ email.domain }}", 1).is_err());
        assert!(check("{% for x in attributes %}{{ x }}{% endfor %}", 1).is_ok());
        assert!(
            check("Hi {{ first_name ", 1)
                .unwrap_err()
                .starts_with("is not a valid template")
        );
    }
}
