"""Storage: asyncpg pool, embedded PostgreSQL, migrations and one repository module per area."""
