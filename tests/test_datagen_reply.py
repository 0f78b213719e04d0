"""Teacher instruction, template teacher and reply checking (extract, plan check, repair)."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from datagen.instruction import teacher_instruction, teacher_messages
from datagen.reply import check_reply, extract_chain_text
from datagen.templates import template_chain, template_reply
from sif.chain import parse_chain, render_area, validate_chain
from sif.plan import plan_focus_detailed

QUESTION, ANSWER = "What colour is the mug?", "red"


@pytest.fixture
def plan():
    depth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (48, 1))
    return plan_focus_detailed([[0.40, 0.50, 0.55, 0.70]], depth, 3, distractor_prob=1.0, n_expand=3)


def _reply_with(plan, boxes_of=None, texts=None, answer=ANSWER):
    """A reply in SIF format with the plan's regions (or changed boxes/texts)."""
    lines = ["<think>"]
    for i, regions in enumerate(plan.steps):
        regs = [
            {"bbox_2d": list(b), "depth": 0.5}
            for b in (boxes_of(i, regions) if boxes_of else [r.bbox for r in regions])
        ]
        lines.append(f"<area>{json.dumps(regs)}</area>")
        lines.append(f"<text>{texts[i] if texts else f'step {i + 1} looks here.'}</text>")
    lines += ["</think>", f"<answer>{answer}</answer>"]
    return "\n".join(lines)


def test_plan_has_a_distractor_and_the_instruction_lists_every_area_to_copy(plan):
    assert plan.kinds[0] == "whole" and plan.kinds[1] == "distractor" and plan.kinds[-1] == "gt"
    text = teacher_instruction(QUESTION, ANSWER, plan)
    assert QUESTION in text and "Correct answer: red" in text
    for regions in plan.steps:
        assert f"<area>{render_area(regions)}</area>" in text
    assert "does NOT answer the question" in text  # the distractor is to be rejected


def test_messages_carry_one_jpeg_step_image_per_step_scaled_down(plan):
    image = Image.new("RGB", (1280, 960), (90, 90, 90))
    (msg,) = teacher_messages(image, QUESTION, ANSWER, plan, max_side=320)
    images = [p for p in msg["content"] if p["type"] == "image_url"]
    assert len(images) == len(plan.steps) and msg["content"][-1]["type"] == "text"
    url = images[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (320, 240)
    assert np.asarray(decoded).std() > 1  # the step's box is drawn on the grey picture


def test_template_teacher_writes_a_valid_chain_that_follows_the_plan(plan):
    text = template_reply(plan, QUESTION, ANSWER)
    assert validate_chain(text) == []
    chain = template_chain(plan, QUESTION, ANSWER)
    assert [list(s.regions) for s in chain.steps] == plan.steps and chain.answer == ANSWER
    assert "look elsewhere" in chain.steps[1].text and "red" in chain.steps[-1].text
    check = check_reply(text, plan, ANSWER)
    assert check.ok and check.repairs == [] and check.text == text


def test_prose_fences_drift_and_depths_are_repaired_to_the_plan(plan):
    drifted = _reply_with(
        plan, boxes_of=lambda i, regs: [[round(min(max(v + 0.01, 0), 1), 4) for v in r.bbox] for r in regs]
    )
    reply = "Sure! Here it is:\n```\n" + drifted + "\n```\nHope this helps."
    assert extract_chain_text(reply).startswith("<think>") and extract_chain_text(reply).endswith("</answer>")
    check = check_reply(reply, plan, ANSWER, tolerance=0.02)
    assert check.ok, check.problems
    assert validate_chain(check.text) == []
    got = parse_chain(check.text).chain
    assert [[r.bbox for r in s.regions] for s in got.steps] == [[r.bbox for r in s] for s in plan.steps]
    assert [[r.depth for r in s.regions] for s in got.steps] == [[r.depth for r in s] for s in plan.steps]
    joined = " | ".join(check.repairs)
    assert "removed text around" in joined and "snapped boxes" in joined and "refilled depths" in joined
    assert 0.009 < check.max_drift < 0.011


def test_regions_in_another_order_within_a_step_still_match(plan):
    two = plan_focus_detailed(
        [[0.05, 0.05, 0.15, 0.15], [0.8, 0.8, 0.95, 0.95]], np.zeros((10, 10)), 0, distractor_prob=0.0, n_expand=4
    )
    reply = _reply_with(two, boxes_of=lambda i, regs: [r.bbox for r in reversed(regs)])
    check = check_reply(reply, two, "2")
    assert check.ok and check.chain.final_boxes == [list(r.bbox) for r in two.steps[-1]]


def test_wrong_answer_is_replaced_by_the_ground_truth(plan):
    check = check_reply(_reply_with(plan, answer="blue"), plan, ANSWER)
    assert check.ok and check.chain.answer == "red"
    assert any("'blue' replaced" in r for r in check.repairs)


@pytest.mark.parametrize(
    "truth, sentence, kept",
    [
        ("red", "The mug is red.", True),
        ("a red mug", "It is the red mug on the left.", True),
        ("Yes", "Yes, the car is over the cat.", True),
        ("No", "Yes, it is.", False),
        ("3", "There are three dogs.", True),
        ("3", "There are 4 dogs.", False),
        ("red", "The mug is blue.", False),
    ],
)
def test_the_teachers_own_answer_sentence_is_kept_when_it_gives_the_ground_truth(plan, truth, sentence, kept):
    """As in SIF-50K the chain ends with the teacher's sentence; the short answer stays on the sample."""
    check = check_reply(_reply_with(plan, answer=sentence), plan, truth)
    assert check.ok and check.chain.answer == (sentence if kept else truth)
    assert any("replaced by the ground truth" in r for r in check.repairs) != kept


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p, r: r.replace("<think>", "").replace("</think>", "").split("<area>", 1)[0], "no <area>/<text> step"),
        (
            lambda p, r: _reply_with(
                p, boxes_of=lambda i, regs: [[0.0, 0.0, 0.2, 0.2]] if i == len(p.steps) - 1 else [x.bbox for x in regs]
            ),
            "drifts",
        ),
        (lambda p, r: _reply_with(p, texts=["a"] * (len(p.steps) - 1) + ["   "]), "text is empty"),
        (
            lambda p, r: r.replace("</text>\n<area>", "</text>\n<area>[]</area><text>extra</text>\n<area>", 1),
            "steps, the plan has",
        ),
        (lambda p, r: _reply_with(p, boxes_of=lambda i, regs: [x.bbox for x in regs] * 2), "region(s), the plan has"),
    ],
)
def test_unrepairable_replies_are_invalid_with_a_reason(plan, mutate, expected):
    reply = mutate(plan, _reply_with(plan))
    check = check_reply(reply, plan, ANSWER)
    assert not check.ok and check.chain is None and check.text is None
    assert any(expected in p for p in check.problems), check.problems


def test_text_with_a_stray_tag_cannot_be_repaired(plan):
    texts = ["fine"] * len(plan.steps)
    texts[0] = "I see <answer> here"
    check = check_reply(_reply_with(plan, texts=texts), plan, ANSWER)
    assert not check.ok and check.problems


def test_prose_that_names_the_tags_before_the_chain_is_dropped(plan):
    reply = "I will think inside <think> tags and answer in <answer> tags, as asked.\n\n" + _reply_with(plan)
    assert extract_chain_text(reply) == _reply_with(plan)
    check = check_reply(reply, plan, ANSWER)
    assert check.ok and "removed text around the chain" in check.repairs


@pytest.mark.parametrize("cut", ["unclosed", "missing"])
def test_an_unclosed_answer_is_as_fine_as_a_missing_one(plan, cut):
    """The ground truth replaces the answer either way (README: the answer is set to the ground truth)."""
    good = _reply_with(plan, answer="blue")
    reply = good.replace("</answer>", "") if cut == "unclosed" else good[: good.index("<answer>")] + "\nThanks!"
    check = check_reply(reply, plan, ANSWER)
    assert check.ok, check.problems
    assert check.chain.answer == ANSWER and validate_chain(check.text) == []


def test_pixel_boxes_are_converted_with_a_note_and_flagged_when_they_cannot_be(plan):
    w, h = 640, 480
    reply = _reply_with(
        plan, boxes_of=lambda i, regs: [[round(v * (w, h)[k % 2]) for k, v in enumerate(r.bbox)] for r in regs]
    )
    check = check_reply(reply, plan, ANSWER, size=(w, h))
    assert check.ok, check.problems
    assert "converted pixel boxes of the 640×480 image to normalized ones" in check.repairs
    assert check.chain.final_boxes == [list(r.bbox) for r in plan.steps[-1]]  # snapped to the plan
    unknown = check_reply(reply, plan, ANSWER)
    assert not unknown.ok and any("image size is unknown" in p for p in unknown.problems)
    small = check_reply(reply, plan, ANSWER, size=(64, 48))
    assert not small.ok and any("not pixel coordinates of the 64×48 image" in p for p in small.problems)


@pytest.mark.parametrize("junk", ["\x00", "\ufffd", "\ud800", "\x1b[31m"])
def test_a_text_with_control_characters_or_undecodable_bytes_is_not_repaired(plan, junk):
    texts = ["fine"] * len(plan.steps)
    texts[1] = f"the red {junk}mug"
    check = check_reply(_reply_with(plan, texts=texts), plan, ANSWER)
    assert not check.ok and any("step 2: the text holds" in p for p in check.problems)
