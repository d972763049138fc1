"""Settings of the example shop: one database for the shop's orders and its jobs.

``SHOP_DB`` picks it: ``sqlite`` (default, ``shop.sqlite3`` here), ``postgresql`` or ``mysql``;
``SHOP_DB_NAME``, ``SHOP_DB_HOST``, ``SHOP_DB_PORT``, ``SHOP_DB_USER``, ``SHOP_DB_PASSWORD``
locate a server database.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "shop.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --8<-- [start:apps]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "hivemind_jobs.contrib.django",
    "django_tasks",
    "orders",
]

vendor = os.environ.get("SHOP_DB", "sqlite")
if vendor == "sqlite":
    name = os.environ.get("SHOP_DB_NAME", str(BASE_DIR / "shop.sqlite3"))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name,
            # the tests' database is a file too: HiveMind's own connections open it beside Django's
            "TEST": {"NAME": os.environ.get("SHOP_TEST_DB_NAME", name + ".test")},
        }
    }
else:
    if vendor == "mysql":
        import pymysql

        pymysql.install_as_MySQLdb()  # Django's MySQL backend on PyMySQL (no C client library needed)
    DATABASES = {
        "default": {
            "ENGINE": f"django.db.backends.{vendor}",
            "NAME": os.environ.get("SHOP_DB_NAME", "shop"),
            "HOST": os.environ.get("SHOP_DB_HOST", "127.0.0.1"),
            "PORT": os.environ.get("SHOP_DB_PORT", ""),
            "USER": os.environ.get("SHOP_DB_USER", "root"),
            "PASSWORD": os.environ.get("SHOP_DB_PASSWORD", ""),
        }
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = True  # a view's jobs commit or roll back with it

# the jobs live in the shop's own database (HIVEMIND["DATABASE"], default "default")
HIVEMIND = {"ALLOW": ["orders"]}

TASKS = {"default": {"BACKEND": "hivemind_jobs.contrib.django.TasksBackend", "QUEUES": ["default", "mail"]}}
# --8<-- [end:apps]
