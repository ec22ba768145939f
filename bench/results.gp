# results.gp - bench/results.png: time per call of the notebook's loss and
# its three gradients against size, one line per implementation.
#   gnuplot -e "datafile='build/bench/seed.dat'; outfile='bench/results.png'" bench/results.gp
# The columns of datafile (bench/report.py): n, then CPU seconds per call for
# aot, aot_alloc, jit, tape, hand, torch.
if (!exists("datafile")) datafile = 'build/bench/seed.dat'
if (!exists("outfile")) outfile = 'bench/results.png'

set terminal pngcairo size 1000,700 enhanced font "DejaVu Sans,11"
set output outfile
set title "y = ||X W + b||_F^2 and its three gradients: time per call, one thread (median CPU time)" font ",13"
set xlabel "size n×k×m (X n×k, W k×m, b n×m)"
set ylabel "time per call (value and all gradients)"
set logscale xy
set xrange [6:2500]
set yrange [1e-7:5]
set xtics ("10×4×4" 10, "100×100×100" 100, "1000×1000×1000" 1000)
set ytics ("100 ns" 1e-7, "1 µs" 1e-6, "10 µs" 1e-5, "100 µs" 1e-4, "1 ms" 1e-3, \
           "10 ms" 1e-2, "100 ms" 0.1, "1 s" 1)
set grid xtics ytics mytics lc rgb "#dddddd"
set key top left Left reverse box opaque spacing 1.2
set style data linespoints

plot datafile using 1:2 title "matdiff AOT, P\\_grad\\_ws"       lw 2 pt 7  ps 1.3 lc rgb "#1f77b4", \
     ''       using 1:3 title "matdiff AOT, P\\_grad (allocates)" lw 1 pt 6  ps 1.3 lc rgb "#17becf" dt 2, \
     ''       using 1:4 title "matdiff JIT, md\\_grad"           lw 2 pt 5  ps 1.1 lc rgb "#2ca02c", \
     ''       using 1:5 title "matdiff runtime tape"              lw 2 pt 9  ps 1.3 lc rgb "#d62728", \
     ''       using 1:6 title "hand-written CBLAS"                lw 2 pt 13 ps 1.3 lc rgb "#000000" dt 3, \
     ''       using 1:7 title "PyTorch 1.13 autograd (float64)"   lw 2 pt 11 ps 1.3 lc rgb "#ff7f0e"
