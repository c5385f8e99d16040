//! The idx datasets a config can name.

use std::fmt;

/// A dataset of 28x28 grey-scale images with 10 classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// Zalando's Fashion-MNIST: the in-distribution data.
    FashionMnist,
    /// LeCun's handwritten digits: a near out-of-distribution set for Fashion-MNIST.
    Mnist,
}

impl DatasetName {
    /// Every dataset.
    pub const ALL: [Self; 2] = [Self::FashionMnist, Self::Mnist];

    /// Directory name under the data dir; also the display name.
    pub const fn dir_name(self) -> &'static str {
        match self {
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
        }
    }

    /// Rows and columns of every image.
    pub const fn image_shape(self) -> (usize, usize) {
        (28, 28)
    }

    /// Classes of the labels.
    pub const fn class_count(self) -> usize {
        self.class_names().len()
    }

    /// Human-readable class names, indexed by label.
    pub const fn class_names(self) -> &'static [&'static str; 10] {
        match self {
            Self::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            Self::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}
