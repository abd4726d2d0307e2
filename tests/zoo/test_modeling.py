import pytest
import torch
from conftest import tiny_config

from kdbench.zoo.flops import sequence_flops
from kdbench.zoo.modeling import build_model, count_parameters, load_trained, prune_heads
from kdbench.zoo.students import StudentShape, load_zoo, resolve, teacher_as_student
from kdbench.zoo.teacher import load_teacher_config, teacher_shape


@pytest.fixture(scope="module")
def roberta():
    cfg = load_teacher_config("roberta-base")
    return cfg, teacher_shape(cfg, "roberta-base")


def test_roberta_base_parameter_counts_match_known_figures(roberta):
    cfg, t = roberta
    zoo = load_zoo()
    teacher = count_parameters(cfg, teacher_as_student(t))
    assert round(teacher / 1e6, 1) == 124.6  # roberta-base with a 2-label classification head
    assert count_parameters(cfg, resolve(zoo["4AH"], t)) == teacher  # fewer, wider heads: same projections
    assert count_parameters(cfg, resolve(zoo["8AH"], t)) == teacher
    assert 81e6 < count_parameters(cfg, resolve(zoo["6L"], t)) < 83e6
    pruned = count_parameters(cfg, resolve(zoo["4AH_pruned"], t))
    # each layer loses 3 x 768 x 512 (+512 biases) in Q/K/V and 512 x 768 in the output projection
    assert teacher - pruned == 12 * (4 * 768 * 512 + 3 * 512)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "mpnet"])
def test_pruned_heads_shrink_projections_and_still_run(model_type):
    cfg = tiny_config(model_type)
    t = teacher_shape(cfg, "tiny")
    shape = StudentShape("p", "", "pruned", 2, 2, t.head_dim, t.hidden, t.ffn, t.heads)
    model = build_model(cfg, shape)
    linears = [m for n, m in model.named_modules() if n.endswith(("query", ".q", "attention.self.query"))]
    assert linears and all(m.out_features == 2 * t.head_dim for m in linears)
    ids = torch.randint(5, 100, (3, 7))
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert logits.shape == (3, 2)


def test_pruning_keeps_the_first_heads_weights():
    torch.manual_seed(0)
    cfg = tiny_config("bert")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_config(cfg)
    before = model.bert.encoder.layer[0].attention.self.query.weight[:16].clone()
    assert prune_heads(model, 2) == 4
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight, before)


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
@pytest.mark.parametrize("student", ["teacher", "two_heads", "two_heads_pruned", "narrow"])
def test_analytic_flops_match_torch_flop_counter(model_type, student):
    from torch.utils.flop_counter import FlopCounterMode

    cfg = tiny_config(model_type)
    t = teacher_shape(cfg, "tiny")
    shapes = {
        "teacher": teacher_as_student(t),
        "two_heads": StudentShape("two_heads", "", "paper", 4, 2, 16, 32, 64),
        "two_heads_pruned": StudentShape("two_heads_pruned", "", "pruned", 4, 2, 8, 32, 64, 4),
        "narrow": StudentShape("narrow", "", "paper", 4, 4, 4, 16, 64),
    }
    shape = shapes[student]
    model = build_model(cfg, shape, attn_implementation="eager")  # eager: attention as counted matmuls
    seq = 24
    ids = torch.randint(5, 100, (1, seq))
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    measured = counter.get_total_flops()
    assert abs(sequence_flops(shape, seq) - measured) / measured < 0.001


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_a_saved_pruned_student_loads_back_on_this_transformers(model_type, tmp_path):
    cfg = tiny_config(model_type)
    t = teacher_shape(cfg, "tiny")
    torch.manual_seed(0)
    model = build_model(cfg, StudentShape("p", "", "pruned", 2, 2, t.head_dim, t.hidden, t.ffn, t.heads))
    model.save_pretrained(tmp_path / "m")
    again = load_trained(tmp_path / "m")
    ids = torch.randint(5, 100, (2, 9))
    with torch.inference_mode():
        a = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        b = again(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert torch.allclose(a, b, atol=1e-6)
