"""Events get a slug, and every existing event gets one from its name.

The column comes with a database default (""), so the previous release, which
does not know the field, keeps inserting events while a rolling deploy runs
with this migration already applied. Rows that predate it are backfilled here;
the new release fills the slug on save.
"""

from django.db import migrations, models
from django.utils.text import slugify

# Frozen copy of events.models.slug_for(): a migration must not follow later model code.
SLUG_MAX_LENGTH = 220
BATCH_SIZE = 500


def backfill_slugs(apps, schema_editor):
    event_model = apps.get_model("events", "Event")
    pending = []
    for event in event_model.objects.filter(slug="").only("id", "name").iterator(chunk_size=BATCH_SIZE):
        event.slug = slugify(event.name)[:SLUG_MAX_LENGTH]
        pending.append(event)
        if len(pending) >= BATCH_SIZE:
            event_model.objects.bulk_update(pending, ["slug"])
            pending.clear()
    event_model.objects.bulk_update(pending, ["slug"])


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="event",
            name="slug",
            field=models.SlugField(blank=True, db_default="", max_length=SLUG_MAX_LENGTH),
        ),
        # Going back drops the column, so there is nothing to undo for the data.
        migrations.RunPython(backfill_slugs, migrations.RunPython.noop, elidable=True),
    ]
