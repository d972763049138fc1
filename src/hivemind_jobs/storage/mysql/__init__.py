"""MySQL/MariaDB storage (aiomysql)."""
