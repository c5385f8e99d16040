//! Datasets: idx files (MNIST, Fashion-MNIST).
