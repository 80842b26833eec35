/** How errors name the catalog level of a bound: the table's parameters (no AWS SDK here). */
export function catalogWhere(t: { database: string; table: string }): string {
  return `catalog table ${t.database}.${t.table} parameters`;
}
