"""Plain-Python listwise reranking bookkeeping: the sliding-window schedule,
one window step, the whole loop with any per-window scorer, and RankGPT's
permutation parsing, as slow and obvious as they can be written."""
import math


def sliding_windows_ref(n, window, stride):
    """(start, end) windows, back to front, stopping at the first window
    that starts at 0 (ragkernels' documented schedule)."""
    out = []
    end = n
    while end > 0:
        start = max(end - window, 0)
        out.append((start, end))
        if start == 0:
            break
        end -= stride
    return out


def rankllm_sliding_windows(n, window, step):
    """castorini/rank_llm's loop, transcribed: the windows it processes."""
    out = []
    end_pos, start_pos = n, n - window
    while end_pos > 0 and start_pos + step != 0:
        start_pos = max(start_pos, 0)
        out.append((start_pos, end_pos))
        end_pos -= step
        start_pos -= step
    return out


def _sort_key(score):
    # NaN last; otherwise higher first. sorted() is stable: ties keep order.
    return (1, 0.0) if math.isnan(score) else (0, -score)


def window_permutation_ref(scores):
    """Positions 0..w-1 of a window, best first."""
    return sorted(range(len(scores)), key=lambda i: _sort_key(float(scores[i])))


def sliding_window_order_ref(orders, windows, scores):
    """One step on lists of lists; returns new lists."""
    out = []
    for row, (start, end), row_scores in zip(orders, windows, scores):
        row = [int(x) for x in row]
        items = row[start:end]
        perm = window_permutation_ref(list(row_scores)[:end - start])
        row[start:end] = [items[i] for i in perm]
        out.append(row)
    return out


def sliding_window_rerank_ref(n, window, stride, scorer):
    """The whole loop: `scorer(items)` gets the candidate positions of a
    window in their current order and returns one score per item."""
    order = list(range(n))
    for start, end in sliding_windows_ref(n, window, stride):
        items = order[start:end]
        perm = window_permutation_ref(list(scorer(items)))
        order[start:end] = [items[i] for i in perm]
    return order


def rankgpt_receive_permutation_ref(response, n):
    """RankGPT's clean_response + remove_duplicate + receive_permutation
    (sunnweiwei/RankGPT, rank_gpt.py) on a window of n passages labelled
    [1]..[n]: the window positions, best first."""
    response = "".join(c if c.isdigit() else " " for c in response).strip()
    ranks = [int(x) - 1 for x in response.split()]
    seen, unique = set(), []
    for r in ranks:
        if r not in seen:
            seen.add(r)
            unique.append(r)
    original = list(range(n))
    kept = [r for r in unique if r in original]
    return kept + [r for r in original if r not in kept]


def label_scores_ref(logits, label_ids):
    """Scores of a window from the last position's logits: one per label."""
    return [float(logits[i]) for i in label_ids]

