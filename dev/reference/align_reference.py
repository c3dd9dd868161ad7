"""
Alignment and compression losses for the oracle (dev/reference/gpt2_reference.py): DPO with its
variants, and knowledge distillation. Written from the papers' formulas in PyTorch autograd,
not from our C code, so that test_gpt.c / test_gpt.cu check our gradients against them.

DPO (Rafailov et al. 2023). A batch of B rows holds B/2 pairs: row 2i is pair i's chosen
response, row 2i+1 its rejected one, each after the pair's prompt. mask (B, T) marks the
response targets. With per-position cross-entropies ce (B, T):
    logp[b]   = -sum_t mask[b, t] * ce[b, t]                 (log pi of the response)
    h_i       = (logp[2i] - ref[2i]) - (logp[2i+1] - ref[2i+1])
where ref holds the reference model's logp of the same rows (computed once, before training).
The loss is the mean over pairs of
    sigmoid:  -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)   (eps: label smoothing,
              the "conservative DPO" of Mitchell 2023; eps = 0 is the paper's loss)
    ipo:      (h - 1 / (2 beta))^2                           (Azar et al. 2023, on summed log-probs)
    hinge:    max(0, 1 - beta h)                             (SLiC, Zhao et al. 2023)
Logged like the common DPO trainers: reward of a row beta * (logp - ref), reward accuracy
(chosen reward > rejected reward), margin (chosen - rejected reward), and the log-probs.

Distillation (Hinton et al. 2015). With student logits s, teacher logits t (same vocabulary),
temperature tau, p = softmax(t / tau), q = softmax(s / tau), per position
    forward KL:  KL(p || q) = sum_v p_v (log p_v - log q_v)
    reverse KL:  KL(q || p) = sum_v q_v (log q_v - log p_v)
and the loss mixes it with the (weighted) hard cross-entropy:
    loss = (1 - alpha) * sum_t w_t ce_t / sum_t w_t + alpha * tau^2 * sum_t w_t KL_t / sum_t w_t
The tau^2 keeps the soft term's gradient on the scale of the hard one as tau grows.
"""
import numpy as np
import torch
import torch.nn.functional as F

DPO_TYPES = {"sigmoid": 1, "ipo": 2, "hinge": 3}  # the debug state's loss kind (0: cross-entropy)
LOSS_DISTILL = 4


def per_position_ce(logits, targets):
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none").view(B, T)


def dpo_pair_losses(h, kind, beta, label_smoothing=0.0):
    """The per-pair loss for log-ratio differences h (a tensor of pairs)."""
    if kind == "sigmoid":
        return -(1.0 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    if kind == "ipo":
        return (h - 1.0 / (2.0 * beta)) ** 2
    if kind == "hinge":
        return torch.relu(1.0 - beta * h)
    raise ValueError(f"unknown DPO loss {kind}")


def row_logps(logits, targets, mask):
    return -(mask * per_position_ce(logits, targets)).sum(dim=1)


def dpo_loss(logits, targets, mask, ref, kind, beta, label_smoothing=0.0):
    """Mean DPO loss over the B/2 pairs of the batch, and the stats of the common trainers."""
    logp = row_logps(logits, targets, mask)
    h = (logp[0::2] - ref[0::2]) - (logp[1::2] - ref[1::2])
    loss = dpo_pair_losses(h, kind, beta, label_smoothing).mean()
    with torch.no_grad():
        rc = beta * (logp[0::2] - ref[0::2])
        rr = beta * (logp[1::2] - ref[1::2])
        stats = {"reward_chosen": float(rc.mean()), "reward_rejected": float(rr.mean()),
                 "accuracy": float((rc > rr).double().mean()), "margin": float((rc - rr).mean()),
                 "logp_chosen": float(logp[0::2].mean()), "logp_rejected": float(logp[1::2].mean())}
    return loss, stats


def distill_loss(logits, targets, weights, teacher_logits, alpha, tau, reverse=False):
    """(1 - alpha) * weighted CE + alpha * tau^2 * weighted KL at temperature tau."""
    ce = per_position_ce(logits, targets)
    w = torch.ones_like(ce) if weights is None else weights.to(ce.dtype)
    logq = F.log_softmax(logits / tau, dim=-1)
    logp = F.log_softmax(teacher_logits.detach() / tau, dim=-1)
    if reverse:
        kl = (logq.exp() * (logq - logp)).sum(dim=-1)
    else:
        kl = (logp.exp() * (logp - logq)).sum(dim=-1)
    wsum = w.sum()
    return (1.0 - alpha) * (w * ce).sum() / wsum + alpha * tau * tau * (w * kl).sum() / wsum


def draw_pairs(rng, B, T, V):
    """A DPO batch: B/2 pairs of rows (B even) sharing a prompt of p tokens (1 <= p <= T-2), the
    responses differing; mask 1 on the response targets (t >= p - 1: the target of position
    p - 1 is the response's first token). Returns the (B, T + 1) token rows and the (B, T) mask."""
    assert B % 2 == 0 and T >= 3
    rows = rng.integers(0, V, size=(B, T + 1))
    mask = np.zeros((B, T), dtype=np.float32)
    for i in range(B // 2):
        p = int(rng.integers(1, T - 1))
        rows[2 * i + 1, :p] = rows[2 * i, :p]
        mask[2 * i, p - 1:] = 1.0
        mask[2 * i + 1, p - 1:] = 1.0
    return rows, mask


def selfcheck(check):
    """Finite differences and identities of the losses above (float64)."""
    g = torch.Generator().manual_seed(7)
    B, T, V = 4, 5, 7
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    targets = torch.randint(0, V, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) < 0.7).double()
    mask[:, -1] = 1.0
    ref = torch.randn(B, generator=g, dtype=torch.float64) * 3
    for kind in DPO_TYPES:
        for ls in ([0.0, 0.2] if kind == "sigmoid" else [0.0]):
            f = lambda z: dpo_loss(z, targets, mask, ref, kind, 0.7, ls)[0]
            ok = torch.autograd.gradcheck(f, (logits.clone().requires_grad_(True),), eps=1e-6, atol=1e-8)
            check(ok, f"DPO {kind} (label smoothing {ls}) gradient vs finite differences", "torch.autograd.gradcheck")
    # identical chosen and rejected rows: h is the reference difference only, and what the loss
    # pushes into the chosen row's logits it pulls out of the rejected row's: the two cancel
    # (so the model's parameters, which see both rows alike, get no gradient)
    same = logits.clone()
    same[1::2] = same[0::2]
    t2 = targets.clone()
    t2[1::2] = t2[0::2]
    m2 = mask.clone()
    m2[1::2] = m2[0::2]
    z = same.clone().requires_grad_(True)
    dpo_loss(z, t2, m2, ref, "sigmoid", 0.5)[0].backward()
    net = float((z.grad[0::2] + z.grad[1::2]).abs().max())
    check(net == 0.0 and float(z.grad.abs().max()) > 0, "DPO: identical chosen and rejected rows get opposite gradients",
          f"max |chosen + rejected| {net:.1e}")
    # beta -> 0: sigmoid DPO's gradient is beta/2 times that of (logp(r) - logp(c)) / pairs
    beta = 1e-6
    z = logits.clone().requires_grad_(True)
    dpo_loss(z, targets, mask, ref, "sigmoid", beta)[0].backward()
    z2 = logits.clone().requires_grad_(True)
    lp = row_logps(z2, targets, mask)
    ((lp[1::2] - lp[0::2]).sum() / (B // 2)).backward()
    err = float((z.grad / (beta / 2) - z2.grad).abs().max() / z2.grad.abs().max())
    check(err < 1e-5, "DPO: beta -> 0 limit", f"relative error {err:.1e}")
    # distillation
    teacher = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 2
    for reverse in (False, True):
        f = lambda z: distill_loss(z, targets, mask, teacher, 0.6, 2.5, reverse)
        ok = torch.autograd.gradcheck(f, (logits.clone().requires_grad_(True),), eps=1e-6, atol=1e-8)
        check(ok, f"distillation ({'reverse' if reverse else 'forward'} KL) gradient vs finite differences", "gradcheck")
    # alpha 0 is the weighted CE; a student equal to the teacher has KL 0 and the KL's gradient 0
    l0 = distill_loss(logits, targets, mask, teacher, 0.0, 2.0)
    ce = (mask * per_position_ce(logits, targets)).sum() / mask.sum()
    check(abs(float(l0 - ce)) < 1e-14, "distillation: alpha 0 is the weighted cross-entropy", f"|diff| {abs(float(l0 - ce)):.1e}")
    z = teacher.clone().requires_grad_(True)
    distill_loss(z, targets, mask, teacher, 1.0, 3.0).backward()
    check(float(z.grad.abs().max()) < 1e-15, "distillation: student = teacher has no KL gradient",
          f"max |grad| {float(z.grad.abs().max()):.1e}")
