#!/usr/bin/env bash
# The main job: Fashion-MNIST end to end on a CPU (about 16 minutes on 2 cores).
#   train the conv VAE -> encode -> a constraint for the 10 classes -> pictures -> evaluate
# (a realism-only constraint, `lctk add-constraint RUN`, is a further ~4 minutes; the job leaves it out)
# Re-running continues where it stopped: every step resumes or is skipped when already done.
set -euo pipefail
RUN=${1:-runs/fashion-mnist}
EPOCHS=${EPOCHS:-8}

if [[ -f "$RUN/run.json" ]]; then
  lctk train-vae --out "$RUN" --resume --epochs "$EPOCHS"
else
  lctk train-vae --backbone conv --data fashion-mnist --out "$RUN" --epochs "$EPOCHS"
fi
lctk encode "$RUN"
[[ -d "$RUN/constraints/classes" ]] || lctk add-constraint "$RUN" --all-attributes --name classes

lctk sample "$RUN" --each -n 10 --out "$RUN/samples/classes-actor.png"
lctk sample "$RUN" --each -n 10 --method optimize --out "$RUN/samples/classes-optimize.png"
lctk sample "$RUN" -n 64 --out "$RUN/samples/realism.png"
lctk sample "$RUN" --prior -n 64 --out "$RUN/samples/prior.png"
lctk transform "$RUN" --index 60000 --index 60001 --index 60002 --index 60003 --attr sandal --out "$RUN/samples/to-sandal.png"
lctk evaluate "$RUN"
echo "pictures: $RUN/reconstructions.png $RUN/prior-samples.png $RUN/samples/*.png; metrics: $RUN/metrics.json"
