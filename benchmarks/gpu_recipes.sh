#!/usr/bin/env bash
# As run on the lent H100 on 2026-11-23 (benchmarks/RESULTS.md): the GPU recipe for target 4 three times,
# then the training issue's ten Fashion-MNIST recipes all at once on the one GPU (accuracy; shared-GPU
# times). Reads the IDX files from .data/fashion-mnist; writes logs and metrics under $OUT.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
D=$PWD/.data/fashion-mnist; R=/tmp/runs; mkdir -p $R
# target 4 with the recipe file, 3 seeds, alone on the GPU
for s in 0 1 2; do
  t=$(date +%s.%N); python3 -m cnnzoo train -c configs/fast_fashion-mnist_gpu.yaml --data-dir $D --seed $s --output $R/gpu_s$s --no-progress > $R/gpu_s$s.log 2>&1
  e=$(date +%s.%N); python3 -c "import json;r=json.load(open('$R/gpu_s$s/results.json'));print('gpu seed $s', r['test_top1'], 'train_s', r['train_seconds'], 'data_s', r['data_seconds'], 'test_s', r['test_seconds'], 'wall', round($e-$t,1))"
done
# the training issue's recipes, all at once (accuracy; times are shared-GPU times)
export OMP_NUM_THREADS=1
for c in alexnet vgg11 nin googlenet resnet18 densenet seresnet18 mobilenet_v2 efficientnet_b0 mixer; do
  (s=$(date +%s); timeout 470 python3 -m cnnzoo train -c configs/${c}_fashion-mnist.yaml --data-dir $D --device cuda --output $R/rec_$c --no-progress > $R/rec_$c.log 2>&1; echo "$c rc=$? wall=$(( $(date +%s)-s ))" >> $R/walls.txt) &
done
wait
cat $R/walls.txt
python3 - <<'PY'
import json,glob,os
for d in sorted(glob.glob('/tmp/runs/rec_*/')):
    try:
        r=json.load(open(d+'results.json')); print(f"{d.split('/')[-2]:24s} {r['model']:20s} ep {r['epochs']} test {r['test_top1']:.4f} train_s {r['train_seconds']:.0f} img/s {r.get('img_per_s',0):,.0f} prec {r['precision']} size {r['image_size']}")
    except Exception as e:
        print(d, 'no results', e)
PY
for f in $R/rec_*.log $R/gpu_s*.log; do echo "### $f"; cat $f; done > $OUT/logs.txt
for c in $R/rec_*/; do echo "### $(basename $c)"; cat $c/metrics.csv 2>/dev/null; done > $OUT/metrics_all.txt
