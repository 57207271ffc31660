//! A field-level problem as the API server reports one, shared by every check of the
//! admission pipeline.

/// A field-level problem, in API-server style: `spec.domains[1]: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `spec.authentication.method`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// Whether the API server skips the CEL rules after this error (a missing, unsupported,
    /// too long, too many or wrongly typed value).
    pub(crate) blocking: bool,
}

impl FieldError {
    pub(crate) fn new(field: &str, message: String) -> Self {
        FieldError {
            field: field.to_string(),
            message,
            blocking: false,
        }
    }

    pub(crate) fn blocking(field: &str, message: String) -> Self {
        FieldError {
            blocking: true,
            ..FieldError::new(field, message)
        }
    }
}
