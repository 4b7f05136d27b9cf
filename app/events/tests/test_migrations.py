from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase

from scheduler.testing import at

INITIAL = [("events", "0001_initial")]
SLUGS = [("events", "0002_event_slug")]


class MigrationTests(TransactionTestCase):
    def tearDown(self):
        call_command("migrate", verbosity=0)  # leave the schema complete for other tests
        super().tearDown()

    def migrate(self, targets):
        """Migrate to `targets` and return the historical models there."""
        executor = MigrationExecutor(connection)
        executor.migrate(targets)
        executor.loader.build_graph()
        return executor.loader.project_state(targets).apps

    def unmigrate_events(self):
        call_command("migrate", "events", "zero", verbosity=0)

    def test_every_migration_applies_from_zero_and_back(self):
        self.unmigrate_events()
        self.assertNotIn("events_event", connection.introspection.table_names())
        call_command("migrate", "events", verbosity=0)
        columns = {c.name for c in connection.introspection.get_table_description(connection.cursor(),
                                                                                  "events_event")}
        self.assertIn("slug", columns)

    def test_0002_gives_existing_events_a_slug_from_their_name(self):
        self.unmigrate_events()
        old_apps = self.migrate(INITIAL)
        old_event = old_apps.get_model("events", "Event")
        gala = old_event.objects.create(name="Spring Gala 2031!", starts_at=at(1, 9), ends_at=at(1, 18))
        fair = old_event.objects.create(name="Café Night", starts_at=at(2, 9), ends_at=at(2, 18))

        new_event = self.migrate(SLUGS).get_model("events", "Event")
        self.assertEqual(new_event.objects.get(pk=gala.pk).slug, "spring-gala-2031")
        self.assertEqual(new_event.objects.get(pk=fair.pk).slug, "cafe-night")

    def test_0002_column_default_keeps_the_previous_release_writing(self):
        # The previous release inserts events without naming the new column.
        self.migrate(SLUGS)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO events_event (name, starts_at, ends_at, location, description, created_at)"
                " VALUES (%s, %s, %s, '', '', %s)",
                ["Old release", at(3, 9), at(3, 10), at(1, 1)],
            )
            cursor.execute("SELECT slug FROM events_event WHERE name = %s", ["Old release"])
            self.assertEqual(cursor.fetchone(), ("",))

    def test_models_and_migrations_agree(self):
        out = StringIO()
        call_command("makemigrations", "--check", "--dry-run", stdout=out)
        self.assertIn("No changes detected", out.getvalue())
