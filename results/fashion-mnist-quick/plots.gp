set terminal svg size 1080,540 dynamic noenhanced font 'sans,12'
set datafile missing 'NaN'
set output 'results/fashion-mnist-quick/map_vs_bits.svg'
set title 'fashion-mnist: mAP@all vs code length'
set xlabel 'bits'
set ylabel 'mAP@all'
set key outside right
set grid
set yrange [0.20:0.75]
plot for [k=2:11] 'results/fashion-mnist-quick/map_vs_bits.dat' using 1:k with linespoints title columnhead(k)
set output 'results/fashion-mnist-quick/pr.svg'
set title 'fashion-mnist: precision-recall over Hamming radius (DRSCH)'
set xlabel 'recall'
set ylabel 'precision'
set xrange [0:1]
set yrange [0:1]
set key inside bottom left
plot for [i=0:3] 'results/fashion-mnist-quick/pr.dat' index i using 2:3 with linespoints title sprintf('%d bits', word('12 24 32 48', i+1)+0)
