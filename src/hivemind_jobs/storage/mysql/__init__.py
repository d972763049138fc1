"""MySQL/MariaDB storage (asyncmy)."""
