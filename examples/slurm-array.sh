#!/bin/bash
# Re-rank a large dataset as a Slurm array job: every task judges one contiguous part of the
# input into the shared output folder (--shard auto reads SLURM_ARRAY_TASK_ID and
# SLURM_ARRAY_TASK_COUNT), then one dependent job checks the parts, writes the report, card, plots
# and review page of the whole, and publishes it.
#
#   sbatch examples/slurm-array.sh
#
# The output folder must be on storage every node sees. A task that dies (preemption, a node
# failure, the time limit) is resumed from its own journal when it is requeued or submitted again
# with --array=<its index>; finished tasks send nothing more.
#SBATCH --job-name=rejudge
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=08:00:00
#SBATCH --requeue
#SBATCH --output=rejudge-%A_%a.log
set -euo pipefail

input="hf://datasets/ORG/NAME"
output="/shared/rejudged/NAME"

# Each task has its own request budget against the server: 8 tasks x 32 = 256 in flight.
rejudge rerank "$input" --output "$output" --shard auto \
  --base-url http://judge-server:8000/v1 --model Qwen/Qwen2.5-72B-Instruct \
  --concurrency 32 --order both

# The first task submits the merge, which starts once every task of the array has succeeded (a
# requeued first task submits it again; merging twice is harmless).
if [[ "${SLURM_ARRAY_TASK_ID}" == "${SLURM_ARRAY_TASK_MIN}" ]]; then
  sbatch --dependency="afterok:${SLURM_ARRAY_JOB_ID}" --job-name=rejudge-merge \
    --output="rejudge-%j-merge.log" \
    --wrap="rejudge merge '$output' && rejudge push '$output' ORG/NAME-rejudged"
fi
