"""No Django models: HiveMind's tables are its own (created by ``manage.py migrate`` through the
app's ``post_migrate`` handler, or ``manage.py hivemind db upgrade``). The module makes Django
send the app that signal."""
