"""PostgreSQL storage (psycopg 3)."""
