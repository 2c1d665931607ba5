from django.db import migrations, models


class Migration(migrations.Migration):
    """A round may train with DPO: its own status, and it counts as a running round."""

    dependencies = [
        ('feedback', '0012_project_generation_backend'),
    ]

    operations = [
        migrations.AlterField(
            model_name='traininground',
            name='status',
            field=models.CharField(choices=[('queued', 'queued'), ('snapshot', 'snapshot'), ('reward', 'training reward model'), ('ppo', 'PPO'), ('dpo', 'DPO'), ('generating', 'generating next batch'), ('done', 'done'), ('needs_review', 'needs review'), ('discarded', 'discarded'), ('failed', 'failed'), ('cancelled', 'cancelled')], default='queued', max_length=12),
        ),
        migrations.RemoveConstraint(
            model_name='traininground',
            name='one_running_round_per_project',
        ),
        migrations.AddConstraint(
            model_name='traininground',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['queued', 'snapshot', 'reward', 'ppo', 'dpo', 'generating'])), fields=('project',), name='one_running_round_per_project'),
        ),
    ]
