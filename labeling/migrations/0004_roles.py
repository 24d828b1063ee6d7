"""The three roles as Django groups: volunteer (labels), reviewer (also settles disagreements and
owns gold items), admin (also sets up queues and invite codes, sees who labelled what). Admins
who manage surveys and models are staff users as well."""

from django.db import migrations

ROLES = {
    "volunteer": ["label_items"],
    "reviewer": ["label_items", "adjudicate_items"],
    "admin": ["label_items", "adjudicate_items", "manage_queues"],
}


def create_roles(apps, schema_editor):
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; the groups need them now.
    create_permissions(global_apps.get_app_config("labeling"), apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(
            content_type__app_label="labeling", codename__in=codenames
        )
        group.permissions.add(*perms)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0003_random_keys_for_existing_items"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
