//! [`Written`]: the outcome of a write that may find no row or break a constraint the caller
//! expects (a name taken, a key missing), so that routes can answer those with a field error
//! instead of a 500, whatever table was written.

/// What an insert, update or delete `returning` one row did.
#[derive(Debug)]
pub enum Written<T> {
    Done(Box<T>),
    /// No row matched (a row the account does not have), or an insert `select`ed nothing.
    NotFound,
    /// The write broke this constraint, one of those the caller named.
    Refused(&'static str),
}

impl<T> Written<T> {
    /// The outcome of `result`: a unique, foreign-key or check violation of one of
    /// `constraints` becomes [`Written::Refused`]; any other error stays an error.
    pub fn from_result(
        result: Result<Option<T>, sqlx::Error>,
        constraints: &[&'static str],
    ) -> Result<Self, sqlx::Error> {
        match result {
            Ok(Some(row)) => Ok(Self::Done(Box::new(row))),
            Ok(None) => Ok(Self::NotFound),
            Err(sqlx::Error::Database(err)) => {
                let broken = err
                    .constraint()
                    .and_then(|name| constraints.iter().find(|known| **known == name));
                match broken {
                    Some(known) => Ok(Self::Refused(known)),
                    None => Err(sqlx::Error::Database(err)),
                }
            }
            Err(err) => Err(err),
        }
    }
}
