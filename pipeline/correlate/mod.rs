//! The correlation stage: Arrow tables in, candidates out, through the SQL in `queries/`.
