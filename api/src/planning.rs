//! The planners (`herald_shared`) as the routes call them: with the deployment's settings,
//! their refusals turned into API errors. Routes validate, call these, and answer.

use herald_shared::effects::EffectKind;
use herald_shared::schedules::{PlanError, PlanSettings};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Gives the group's students as they are now the messages of its active schedules' already
/// planned future fires, in the caller's transaction (`herald_shared::schedules::refill_group`):
/// after students are added, re-subscribed or moved to another zone.
pub async fn refill_schedules(
    state: &AppState,
    conn: &mut PgConnection,
    group_id: Uuid,
) -> Result<(), ApiError> {
    let settings = schedule_settings(state);
    herald_shared::schedules::refill_group(conn, group_id, &settings)
        .await
        .map_err(plan_error)
}

/// The schedule planner's settings in this deployment.
pub fn schedule_settings(state: &AppState) -> PlanSettings {
    PlanSettings::new(
        &state.config.schedules,
        &state.jobs.get(EffectKind::Message).queue,
    )
}

/// A schedule planner's error as the API answers it: a schedule the planner cannot read is
/// Herald's fault, not the caller's.
pub fn plan_error(err: PlanError) -> ApiError {
    match err {
        PlanError::Database(err) => ApiError::from(err),
        PlanError::Invalid { .. } => ApiError::Internal(err.into()),
    }
}
