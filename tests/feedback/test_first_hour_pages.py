"""First-hour fixes on server-rendered pages: held-out accuracy on few pairs, studio for staff only."""
import pytest

from feedback.models import Project, TrainingRound

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("pairs, greyed", [(3, True), (40, False)])
def test_held_out_accuracy_on_few_pairs_is_greyed(client, admin_user, pairs, greyed):
    project = Project.objects.create(name="P")
    training_round = TrainingRound.objects.create(
        project=project, number=1, status="done",
        metrics={"reward_summary": {"eval_accuracy": 1.0, "eval_pairs": pairs, "eval_accuracy_before": 0.5,
                                    "eval_mean_margin": 0.2, "train_pairs": 10, "epochs": 1}})
    client.force_login(admin_user)
    html = client.get(f"/studio/rounds/{training_round.pk}/").content.decode()
    assert f"on {pairs} pairs" in html
    assert ("too few to mean much" in html) == greyed and ('class="muted-figure"' in html) == greyed


def test_studio_pages_answer_annotators_with_a_403_and_anonymous_with_the_login(client, alice):
    assert client.get("/studio/").url.startswith("/accounts/login/")
    client.force_login(alice)
    response = client.get("/studio/projects/")
    assert response.status_code == 403 and "This page is for staff" in response.content.decode()
