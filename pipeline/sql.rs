//! `lastseen sql`: ad hoc statements over a correlated estate, printed as tables.

use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

/// Runs each statement of `text` in turn and prints its result as a table on standard output.
pub async fn print(ctx: &SessionContext, text: &str) -> anyhow::Result<()> {
    let statements = DFParser::parse_sql(text)?;
    if statements.is_empty() {
        anyhow::bail!("no SQL statement given");
    }

    for statement in statements {
        let shown = statement.to_string();
        let plan = ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(|error| anyhow::anyhow!("{shown}\n  {error}"))?;
        let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
        println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
    }
    Ok(())
}
