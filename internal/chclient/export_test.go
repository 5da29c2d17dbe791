package chclient

// For the cluster tests, which set up a store as an earlier version left
// it: the migrations' tables are created as the runner creates them.
var (
	ExecRendered          = execRendered
	RecordMigration       = recordMigration
	SchemaMigrationsTable = schemaMigrationsTable
)

var ExecDDL = execDDL
