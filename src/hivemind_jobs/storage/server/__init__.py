"""What the server backends (PostgreSQL, MySQL/MariaDB) share."""
