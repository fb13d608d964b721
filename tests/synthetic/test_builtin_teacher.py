"""The built-in teacher on Generate data: chosen as the teacher when the project has it deployed, one
click away beside the endpoint field when not (the form comes back as it was typed), and a teacher whose
model reads too little for the pipeline's largest request refused on the form with the numbers, for an
endpoint and for a local model, and again on the topic tree's page with the real topics. Through
Django's test client and the real database; the teacher is never asked anything here, so nothing
depends on what the built-in teacher writes (tests/endpoints/builtin.py)."""

from __future__ import annotations

import html
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.endpoints.selectors import builtin_endpoint
from apps.endpoints.services import endpoint_deploy, endpoint_deploy_builtin
from apps.jobs.models import Job, Status
from tests.endpoints import builtin
from tests.synthetic.conftest import documents_kept
from workers.training.synthetic.documents import load_documents
from workers.training.synthetic.pipeline import SynthSpec, example_request, topic_request

pytestmark = pytest.mark.django_db

DESCRIPTION = "Reverse the letters of a word: the user gives letters separated by spaces."
SEEDS = [
    '{"prompt": "reverse: c a t", "completion": "t a c"}',
    '{"prompt": "reverse: d o g", "completion": "g o d"}',
]


@pytest.fixture
def generate(client, alice, alice_project, tiny_model, settings):
    settings.DATA_DIR = tiny_model.parent.parent
    builtin.helpers(tiny_model)
    client.force_login(alice)
    return client, reverse("generation-new", args=[alice_project.pk])


def _form(**more) -> dict:
    return {"technique": "sft", "description": DESCRIPTION, "rows": 6, "seeds": "\n".join(SEEDS), **more}


def _counted(tiny_model, requests) -> int:
    """The longest of the requests in tokens, as transformers counts them."""
    count = builtin.transformers_counter(tiny_model / "partial")
    return max(count(r) for r in requests)


def _checked(page: str, value: str) -> bool:
    return re.search(rf'<input type="radio" name="teacher" value="{value}"[^>]* checked>', page) is not None


def _seeds() -> list[dict]:
    import json

    return [json.loads(s) for s in SEEDS]


def test_the_deployed_built_in_teacher_is_the_teacher(generate, alice, alice_project):
    client, url = generate
    assert 'data-testid="builtin-deploy-teacher"' in client.get(url).content.decode()
    teacher = endpoint_deploy_builtin(project=alice_project, user=alice, variant="teacher")
    page = client.get(url).content.decode()
    assert f'<option value="{teacher.pk}" selected>' in page and _checked(page, "endpoint")
    assert 'data-testid="builtin-deploy-teacher"' not in page
    response = client.post(url, _form(teacher="endpoint", teacher_endpoint=teacher.pk))
    job = Job.objects.get()
    assert response.url == reverse("generation-detail", args=[alice_project.pk, job.pk])
    assert job.spec["teacher"] == {"endpoint": teacher.pk}


def test_deploying_the_teacher_from_the_form_comes_back_with_what_was_typed(generate, alice_project):
    client, url = generate
    deploy = reverse("builtin-deploy", args=[alice_project.pk, "teacher"])
    typed = {**_form(technique="rlvr", rows="9"), "teacher": "url", "teacher_url": "http://teacher.example/v1",
             "teacher_model": "big", "teacher_endpoint": "", "use": "teacher_endpoint"}  # fmt: skip
    response = client.post(f"{deploy}?next={url}%3Ftechnique%3Drlvr", typed)
    assert response.url == f"{url}?technique=rlvr"
    page = html.unescape(client.get(response.url).content.decode())
    teacher = builtin_endpoint(alice_project.pk, "teacher")
    assert teacher is not None and f'<option value="{teacher.pk}" selected>' in page
    assert _checked(page, "endpoint")  # the button's choice, over the URL that was picked before
    assert f"{DESCRIPTION}</textarea>" in page and f"{SEEDS[1]}</textarea>" in page
    assert 'name="rows" value="9"' in page and '<option value="rlvr" selected>' in page
    assert 'value="http://teacher.example/v1"' in page and 'value="big"' in page  # the URL teacher, kept too
    assert "is deployed as atelier-tiny-teacher and chosen below" in page


def test_a_teacher_endpoint_that_reads_too_little_is_refused_with_the_numbers_and_keeps_no_document(
    generate, alice, alice_project, tiny_model, tmp_path, settings
):
    client, url = generate
    small = endpoint_deploy(project=alice_project, user=alice, name="small-teacher",
                            model=str(builtin.reads_at_most(tiny_model, tmp_path / "small", 256)))  # fmt: skip
    document = "Words are made of letters. " * 120
    before = documents_kept(alice_project)
    response = client.post(url, _form(teacher="endpoint", teacher_endpoint=small.pk,
                                      documents=[SimpleUploadedFile("words.txt", document.encode())]))  # fmt: skip
    page = html.unescape(response.content.decode())
    chunks = load_documents([_written(tmp_path, document)])
    spec = SynthSpec(technique="sft", description=DESCRIPTION, output_dir="-", teacher={}, seeds=_seeds())
    longest = max(chunks, key=lambda c: len(c.text))
    expected = _counted(
        tiny_model, [topic_request(spec, chunks), example_request(spec, DESCRIPTION[:120], longest, 4)]
    )
    assert response.status_code == 200 and not Job.objects.exists()
    assert (
        f"The teacher's longest request is {expected:,} tokens and it may answer with 512; the endpoint "
        f"small-teacher ({tmp_path / 'small'}) reads at most 256 tokens. Shorten the description, give fewer "
        "seeds, or choose a teacher that reads more." in page
    )
    assert page.index("longest request is") > page.index('name="teacher_endpoint"')  # beside the field
    assert documents_kept(alice_project) == before  # the uploaded document is not kept


def _written(tmp_path: Path, text: str) -> str:
    path = tmp_path / "words.txt"
    path.write_text(text)
    return str(path)


@pytest.fixture
def offered(settings) -> Iterator[Path]:
    """A folder of its own inside the directory the tests offer models from (tests/settings.py)."""
    folder = Path(settings.MODEL_DIRS[0]) / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_local_teacher_is_checked_too_and_the_built_in_teacher_fits(generate, tiny_model, offered):
    client, url = generate
    small = builtin.reads_at_most(tiny_model, offered / "small-teacher", 256)
    page = html.unescape(client.post(url, _form(teacher="local", teacher_local=str(small))).content.decode())
    assert f"it may answer with 512; {small.resolve()} reads at most 256 tokens." in page
    assert not Job.objects.exists()
    response = client.post(url, _form(teacher="local", teacher_local="atelier-tiny/teacher"))
    assert response.status_code == 302 and Job.objects.get().spec["teacher"] == {
        "local": str(tiny_model / "teacher")
    }


def test_the_topic_tree_is_checked_again_with_its_real_topics(
    generate, alice, alice_project, tiny_model, tmp_path
):
    """Before the tree exists the form measures a topic as long as the pipeline's fallback topic; a tree
    edited to longer topics can need more, and generating rows from it is refused with the numbers."""
    client, _ = generate
    spec = SynthSpec(technique="sft", description=DESCRIPTION, output_dir="-", teacher={}, seeds=_seeds())
    at_form = _counted(
        tiny_model, [topic_request(spec, []), example_request(spec, DESCRIPTION[:120], None, 4)]
    )
    long_topic = "Words of many letters " * 5
    leaf = f"{long_topic.strip()[:120]} / {long_topic.strip()[:120]}"
    needed = _counted(tiny_model, [example_request(spec, leaf, None, 4)])
    assert needed > at_form
    # A teacher that reads exactly what the form measured: accepted there, too small for the long tree.
    exact = endpoint_deploy(project=alice_project, user=alice, name="exact-teacher",
                            model=str(builtin.reads_at_most(tiny_model, tmp_path / "exact", at_form + 512)))  # fmt: skip
    created = client.post(
        reverse("generation-new", args=[alice_project.pk]),
        _form(teacher="endpoint", teacher_endpoint=exact.pk),
    )
    assert created.status_code == 302
    root = Job.objects.get()
    Job.objects.filter(pk=root.pk).update(status=Status.SUCCEEDED)  # the teacher has proposed its tree
    detail = reverse("generation-detail", args=[alice_project.pk, root.pk])
    page = html.unescape(
        client.post(detail, {"topics": f"{long_topic}\n- {long_topic}", "rows": 4}).content.decode()
    )
    assert f"The teacher's longest request is {needed:,} tokens and it may answer with 512" in page
    assert f"reads at most {at_form + 512:,} tokens" in page and Job.objects.count() == 1
    assert client.post(detail, {"topics": "Short words", "rows": 4}).status_code == 302
    assert Job.objects.count() == 2
