"""The peer: distilabel's UltraFeedback task (overall-rating aspect) with its OpenAI-compatible
client, run as its documentation shows, in a Pipeline, over the same rows and server.

Usage: python peer_distilabel.py BASE_URL ROWS.jsonl CONCURRENCY
Prints one JSON line: rows, seconds, rows_per_second, rated (rows with both ratings parsed).
"""

import json
import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def main() -> None:
    base_url, rows_path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.environ.setdefault("DISTILABEL_CACHE_DIR", tempfile.mkdtemp(prefix="distilabel-"))
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import UltraFeedback

    rows = []
    with open(rows_path) as lines:
        for line in lines:
            row = json.loads(line)
            rows.append({"instruction": row["prompt"], "generations": [row["chosen"], row["rejected"]]})

    started = time.perf_counter()
    with Pipeline(name="rejudge-peer") as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=max(concurrency, 50))
        judge = UltraFeedback(
            llm=OpenAILLM(
                model="instant",
                base_url=base_url,
                api_key="not-needed",
                max_retries=6,
                timeout=120,
                generation_kwargs={"max_new_tokens": 512, "temperature": 0.0},
            ),
            aspect="overall-rating",
            input_batch_size=concurrency,
        )
        load >> judge
    distiset = pipeline.run(use_cache=False)
    seconds = time.perf_counter() - started
    table = distiset["default"]["train"]
    rated = sum(1 for ratings in table["ratings"] if ratings and all(r is not None for r in ratings))
    print(json.dumps({"rows": len(rows), "seconds": seconds, "rows_per_second": len(rows) / seconds, "rated": rated}))


if __name__ == "__main__":
    main()
