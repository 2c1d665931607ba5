"""Importing pairs stores exactly what was sent, all or nothing, whichever way it is written.

The import writes its rows without the ORM (`_pairs_write`: COPY on PostgreSQL,
executemany on SQLite, ids reserved first); before, it used bulk_create
(`_pairs_bulk_create`, kept as the reference). Both must store the same rows.
"""
import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from feedback.models import Comparison, Prompt, Sample
from feedback.services import projects as service
from feedback.services.projects import PromptImportError, comparison_rows_prepare, comparisons_import
from tests.helpers import make_project

pytestmark = pytest.mark.django_db

AWKWARD = "tab\there, new\nline, CR\r, back\\slash, \\N, \"quotes\", 'single', emoji 🙂, ümlaut, <b>html</b>"
ROWS = [
    {"prompt": AWKWARD, "response_a": AWKWARD + " A", "response_b": "B\\", "model_a": "m\tA", "model_b": "mB",
     "gold": "a", "split": "held_out", "tags": ["t\\1", "naïve"]},
    {"prompt": [{"role": "system", "content": "Be brief.\n"}, {"role": "user", "content": "Hi\t?"}],
     "response_a": "x", "response_b": "y"},
    {"prompt": "plain", "response_a": "a " * 2000, "response_b": "b", "tags": []},
]


def _stored(project) -> list[dict]:
    return [
        {"messages": c.prompt.messages, "source": c.prompt.source, "split": c.prompt.split, "tags": c.prompt.tags,
         "a": (c.sample_a.text, c.sample_a.model_name, c.sample_a.checkpoint_id, c.sample_a.generation_params,
               c.sample_a.token_count, c.sample_a.finished, c.sample_a.prompt_id == c.prompt_id),
         "b": (c.sample_b.text, c.sample_b.model_name, c.sample_b.checkpoint_id, c.sample_b.generation_params,
               c.sample_b.token_count, c.sample_b.finished, c.sample_b.prompt_id == c.prompt_id),
         "votes_needed": c.votes_needed, "status": c.status, "gold": c.gold_choice, "batch": c.batch,
         "round": c.round_id, "stamped_now": all(abs((timezone.now() - t).total_seconds()) < 600
                            for t in (c.created_at, c.prompt.created_at, c.sample_a.created_at))}
        for c in Comparison.objects.filter(project=project).select_related("prompt", "sample_a", "sample_b")
        .order_by("id")
    ]


def test_an_import_stores_the_text_as_sent(tiny_models):
    project = make_project(tiny_models, first_batch=0, overlap=3)
    assert comparisons_import(project=project, rows=ROWS, tags=["batch-7"]) == 3
    stored = _stored(project)
    assert stored[0]["messages"] == [{"role": "user", "content": AWKWARD}]
    assert stored[0]["a"][:2] == (AWKWARD + " A", "m\tA") and stored[0]["b"][0] == "B\\"
    assert (stored[0]["split"], stored[0]["tags"], stored[0]["gold"]) == ("held_out", ["t\\1", "naïve", "batch-7"], "a")
    assert stored[1]["messages"] == ROWS[1]["prompt"] and stored[1]["tags"] == ["batch-7"]
    assert stored[2]["a"][0] == "a " * 2000
    assert {(s["votes_needed"], s["status"], s["source"], s["batch"], s["round"]) for s in stored} == {
        (3, "open", "import", 0, None)}
    assert all(s["a"][2:] == (None, {}, 0, True, True) and s["stamped_now"] for s in stored)


def test_the_fast_path_stores_what_bulk_create_stores(tiny_models):
    by_copy = make_project(tiny_models, name="copy", first_batch=0, overlap=2)
    by_orm = make_project(tiny_models, name="orm", first_batch=0, overlap=2)
    prepared = comparison_rows_prepare(ROWS * 3, holdout_percent=30)
    with transaction.atomic():
        service._pairs_write(by_copy, prepared, "import")
        service._pairs_bulk_create(by_orm, prepared, "import")
    assert len(_stored(by_copy)) == 9 and _stored(by_copy) == _stored(by_orm)
    # the id counters moved past the ids the fast path used: the ORM's next inserts get fresh ones
    with transaction.atomic():
        service._pairs_write(by_copy, prepared[:2], "import")
    prompt = Prompt.objects.create(project=by_orm, messages=[{"role": "user", "content": "next"}])
    assert prompt.pk > Prompt.objects.filter(project=by_copy).order_by("-pk").first().pk
    assert Comparison.objects.filter(project=by_copy).count() == 11


def test_a_bad_row_late_in_a_large_import_stores_nothing(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    before = (Prompt.objects.count(), Sample.objects.count())
    rows = [{"prompt": f"q{i}", "response_a": "a", "response_b": "b"} for i in range(2500)]
    rows[2399]["response_b"] = "b\x00"
    with pytest.raises(PromptImportError) as error:
        comparisons_import(project=project, rows=rows)
    assert (error.value.row, error.value.field) == (2400, "response_b") and "NUL" in error.value.message
    assert Comparison.objects.filter(project=project).count() == 0
    assert (Prompt.objects.count(), Sample.objects.count()) == before


def test_a_database_refusal_halfway_stores_nothing(tiny_models):
    """The comparisons are written last: when the database refuses them, the prompts and
    samples written before go too."""
    project = make_project(tiny_models, first_batch=0)
    before = (Prompt.objects.count(), Sample.objects.count())
    project.votes_per_comparison = -1  # not saved; the comparison rows' CHECK constraint refuses it
    with pytest.raises(IntegrityError):
        with transaction.atomic():  # the test's own transaction must survive the error
            comparisons_import(project=project, rows=[{"prompt": "q", "response_a": "a", "response_b": "b"}] * 3)
    assert (Prompt.objects.count(), Sample.objects.count()) == before
    assert Comparison.objects.filter(project=project).count() == 0
    if connection.vendor == "postgresql":  # the triggers were off for the failed COPYs: on again
        with connection.cursor() as cursor:
            cursor.execute("SHOW session_replication_role")
            assert cursor.fetchone()[0] == "origin"


ON_POSTGRESQL = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="foreign-key triggers and row locks of PostgreSQL (set DATABASE_URL)")


def _triggers_off_spy(monkeypatch) -> list:
    returned = []
    real = service._foreign_key_triggers_off

    def spy(cursor):
        returned.append(real(cursor))
        return returned[-1]

    monkeypatch.setattr(service, "_foreign_key_triggers_off", spy)
    return returned


@ON_POSTGRESQL
def test_foreign_keys_are_checked_again_right_after_the_import(tiny_models, monkeypatch):
    """The triggers are off only while the import's own rows are written: a bad reference
    written next in the same transaction is refused."""
    project = make_project(tiny_models, first_batch=0)
    returned = _triggers_off_spy(monkeypatch)
    with transaction.atomic():
        comparisons_import(project=project, rows=ROWS)
        with connection.cursor() as cursor:
            cursor.execute("SHOW session_replication_role")
            assert cursor.fetchone()[0] == "origin"
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(IntegrityError), transaction.atomic():
            Sample.objects.create(prompt_id=10 ** 12, model_name="m", text="t")
    assert returned == ["origin"]  # the fast path ran (the test database's role is a superuser)
    assert len(_stored(project)) == 3


@ON_POSTGRESQL
def test_a_role_that_may_not_turn_triggers_off_imports_with_them_on(tiny_models, monkeypatch):
    project = make_project(tiny_models, first_batch=0)
    returned = _triggers_off_spy(monkeypatch)
    with connection.cursor() as cursor:  # all inside the test's transaction, rolled back after it
        cursor.execute("CREATE ROLE rlhf_import_plain NOLOGIN")
        cursor.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO rlhf_import_plain")
        cursor.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO rlhf_import_plain")
        cursor.execute("SET ROLE rlhf_import_plain")
        try:
            assert comparisons_import(project=project, rows=ROWS * 2) == 6
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the triggers' checks, now
        finally:
            cursor.execute("RESET ROLE")
    assert returned == [None]
    assert _stored(project)[:3] == _stored(project)[3:] and len(_stored(project)) == 6


@ON_POSTGRESQL
def test_tables_with_triggers_of_their_own_keep_every_trigger_on(tiny_models, monkeypatch):
    """Turning foreign-key triggers off turns off every ordinary trigger: one that an
    operator added (here: upper-casing model names) must still run on imported rows."""
    project = make_project(tiny_models, first_batch=0)
    returned = _triggers_off_spy(monkeypatch)
    with connection.cursor() as cursor:  # inside the test's transaction, rolled back after it
        cursor.execute("CREATE FUNCTION rlhf_test_upper() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN NEW.model_name := upper(NEW.model_name); RETURN NEW; END $$")
        cursor.execute("CREATE TRIGGER rlhf_test_upper BEFORE INSERT ON feedback_sample "
                       "FOR EACH ROW EXECUTE FUNCTION rlhf_test_upper()")
    comparisons_import(project=project, rows=[{"prompt": "q", "response_a": "a", "response_b": "b",
                                               "model_a": "small", "model_b": "large"}])
    assert returned == [None]
    assert sorted(Sample.objects.filter(prompt__project=project).values_list("model_name", flat=True)) == [
        "LARGE", "SMALL"]


@ON_POSTGRESQL
@pytest.mark.django_db(transaction=True)
def test_deleting_the_project_during_its_import_waits_then_fails(tiny_models):
    """The project row is locked as the triggers would lock it: a delete issued while the
    import's transaction is open waits for it, then fails on the imported prompts; the
    pairs stay, and nothing points at a project that is gone."""
    from django.db import connections

    from feedback.models import Project

    project = Project.objects.create(name="bare")  # nothing else refers to it
    outcome, started = [], threading.Event()

    def delete():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                started.set()
                cursor.execute(f"DELETE FROM {Project._meta.db_table} WHERE id = %s", [project.pk])
            outcome.append("deleted")
        except IntegrityError:
            outcome.append("refused")
        finally:
            connections.close_all()

    thread = threading.Thread(target=delete)
    with transaction.atomic():
        comparisons_import(project=project, rows=ROWS)
        thread.start()
        started.wait(10)
        thread.join(1.0)
        assert thread.is_alive() and outcome == []  # waiting for the import
    thread.join(10)
    assert outcome == ["refused"]
    assert Project.objects.filter(pk=project.pk).exists() and len(_stored(project)) == 3


@ON_POSTGRESQL
@pytest.mark.django_db(transaction=True)
def test_a_project_deleted_while_its_rows_are_written_fails_the_import(tiny_models, monkeypatch):
    """The project row is locked only after the COPYs (page views that lock it do not wait
    for them): a delete that commits while they run makes the import fail whole, as its
    deferred foreign-key checks would have, instead of leaving rows that point nowhere."""
    from django.db import connections

    from feedback.models import Project

    project = Project.objects.create(name="bare")
    real_rows = service._pair_rows

    def delete_committed():
        try:
            with connection.cursor() as cursor:  # autocommit: committed when it returns
                cursor.execute(f"DELETE FROM {Project._meta.db_table} WHERE id = %s", [project.pk])
        finally:
            connections.close_all()

    def rows_then_delete(*args, **kwargs):
        thread = threading.Thread(target=delete_committed)
        thread.start()
        thread.join(10)  # not blocked: nothing locks the project yet
        return real_rows(*args, **kwargs)

    monkeypatch.setattr(service, "_pair_rows", rows_then_delete)
    with pytest.raises(IntegrityError):
        comparisons_import(project=project, rows=ROWS)
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Prompt.objects.filter(project_id=project.pk).exists()
    assert not Comparison.objects.filter(project_id=project.pk).exists()
